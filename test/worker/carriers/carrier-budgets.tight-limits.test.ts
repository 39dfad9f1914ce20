import { getExpectedTwilioSignature } from "twilio/lib/webhooks/webhooks";
import { beforeAll, describe, expect, it } from "vitest";
import { callTraces, tenantWithNumbers } from "../support/calls.ts";
import {
  BASE,
  postTelnyx,
  postTwilio,
  randomCallControlId,
  randomCallSid,
  randomE164,
  telnyxEnvelope,
  twilioCallParams,
} from "../support/carriers.ts";

/**
 * Layer 1 of the webhook guard (workers/carriers/webhook-budgets.ts) at a test's size (`worker-tight-limits` in
 * vitest.config.ts): 5 refusals per source and account claim, 50 verified requests per carrier account, per 60 s
 * (production: 60 and 60,000). Before these budgets one limit of 600 per source address counted every request:
 * forgeries were refused only with everything else, and a carrier's shared address was capped with them.
 *
 * The miniflare limiter's windows are aligned to the wall clock, and a window that rolls over mid-check refills
 * the budget: each check runs on fresh addresses or a fresh account and is retried (a limiter that never limits
 * fails every attempt).
 */
const VOICE = "/telephony/twilio/voice";
const FAILURE_BUDGET = 5;
const ACCOUNT_CEILING = 50;

let twilioNumber: string;
beforeAll(async () => {
  const fixture = await tenantWithNumbers([{ carrier: "twilio" }]);
  [twilioNumber] = fixture.numbers as [string];
});

const hex = (digits: number) => Array.from({ length: digits }, () => Math.floor(Math.random() * 16).toString(16)).join("");
const randomAccountSid = () => `AC${hex(32)}`;
const octet = () => Math.floor(Math.random() * 254) + 1;
/** 198.18.0.0/15 is reserved for benchmarks (RFC 2544): nobody's real address. */
const randomV4 = () => `198.18.${octet()}.${octet()}`;

async function inOneWindow(check: () => Promise<boolean>) {
  for (let attempt = 0; attempt < 3; attempt++) if (await check()) return;
  throw new Error("the budget was never reached in one window");
}

async function statusOf(response: Promise<Response>): Promise<number> {
  const answered = await response;
  await answered.arrayBuffer();
  return answered.status;
}

/** A webhook another customer's Twilio account sends: Twilio fills in that account and signs with its token. */
function postOtherAccountsWebhook(ip: string) {
  const params = { ...twilioCallParams(randomCallSid(), twilioNumber, "ringing"), AccountSid: randomAccountSid() };
  const signature = getExpectedTwilioSignature("another-accounts-auth-token", `${BASE}${VOICE}`, params);
  return postTwilio(VOICE, params, { ip, signature });
}

describe("requests that fail verification: a tight budget per source", () => {
  it("a flood of forgeries from one IPv6 /64 gets 429 after the budget, then even a signed request from it, unverified; other sources pass", async () => {
    let prefix = "";
    await inOneWindow(async () => {
      prefix = `2001:db8:${hex(4)}:${hex(4)}`;
      // Each forgery from another address of the /64: rotating addresses buys no fresh budget.
      for (let i = 0; i < FAILURE_BUDGET; i++) {
        const forged = postTwilio(VOICE, twilioCallParams(randomCallSid(), twilioNumber, "ringing"), {
          ip: `${prefix}::${hex(4)}`,
          signature: "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA==",
        });
        if ((await statusOf(forged)) !== 403) return false;
      }
      const past = postTwilio(VOICE, twilioCallParams(randomCallSid(), twilioNumber, "ringing"), { ip: `${prefix}::1`, signature: "AAAA" });
      return (await statusOf(past)) === 429;
    });
    const before = await callTraces();
    // Correctly signed, for a real number: refused all the same before its signature is read, and opens nothing.
    const signed = await postTwilio(VOICE, twilioCallParams(randomCallSid(), twilioNumber, "ringing"), { ip: `${prefix}::2` });
    expect(signed.status).toBe(429);
    expect(Number(signed.headers.get("Retry-After"))).toBeGreaterThan(0);
    await signed.arrayBuffer();
    expect(await callTraces()).toEqual(before);
    const elsewhere = await postTwilio(VOICE, twilioCallParams(randomCallSid(), twilioNumber, "ringing"), { ip: `2001:db8:${hex(4)}::1` });
    expect(elsewhere.status).toBe(200);
    await elsewhere.arrayBuffer();
  });

  it("Telnyx: sources outside its ranges get 403 for the budget, then 429", async () => {
    await inOneWindow(async () => {
      const ip = `8.${octet()}.${octet()}.${octet()}`;
      const initiated = () =>
        telnyxEnvelope("call.initiated", {
          call_control_id: randomCallControlId(),
          direction: "incoming",
          from: "+14155550100",
          to: randomE164(),
        });
      for (let i = 0; i < FAILURE_BUDGET; i++) if ((await statusOf(postTelnyx(initiated(), { ip }))) !== 403) return false;
      return (await statusOf(postTelnyx(initiated(), { ip }))) === 429;
    });
  });

  it("a carrier's shared address: other accounts' webhooks it relays spend their own budget; ours from it keep flowing", async () => {
    const sharedAddress = randomV4();
    await inOneWindow(async () => {
      for (let i = 0; i < FAILURE_BUDGET; i++) if ((await statusOf(postOtherAccountsWebhook(sharedAddress))) !== 403) return false;
      return (await statusOf(postOtherAccountsWebhook(sharedAddress))) === 429;
    });
    // Four times the failure budget of our own account's webhooks, from the very address that is refused for others'.
    for (let i = 0; i < 4 * FAILURE_BUDGET; i++) {
      const ours = await postTwilio(VOICE, twilioCallParams(randomCallSid(), randomE164(), "ringing"), { ip: sharedAddress });
      expect(ours.status).toBe(200);
      await ours.arrayBuffer();
    }
  });
});

describe("verified requests: a ceiling per carrier account", () => {
  it("one address carries an account's traffic up to the account's ceiling, then 429; another account from it is not limited", async () => {
    const sharedAddress = randomV4();
    // A subaccount's webhooks carry its own AccountSid: each is a fresh account, so each attempt a fresh ceiling.
    const sendAs = (accountSid: string) =>
      statusOf(
        postTwilio(VOICE, { ...twilioCallParams(randomCallSid(), randomE164(), "ringing"), AccountSid: accountSid }, { ip: sharedAddress }),
      );
    await inOneWindow(async () => {
      const account = randomAccountSid();
      for (let i = 0; i < ACCOUNT_CEILING; i++) if ((await sendAs(account)) !== 200) return false;
      return (await sendAs(account)) === 429;
    });
    expect(await sendAs(randomAccountSid())).toBe(200);
  });
});
