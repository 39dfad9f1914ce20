import { beforeAll, describe, expect, it } from "vitest";
import { randomE164, simClearFaults, simFault, simNumberOnAccount, simRequests } from "../support/carriers.ts";
import { api, createTenant, errorOf, userWithToken } from "../support/identity.ts";

/**
 * Attaching a number asks the carrier whether it is on the platform's account (workers/carriers/number-ownership.ts),
 * through the fake carrier APIs (test/simulators/carriers), which list the account's numbers like Twilio's
 * `IncomingPhoneNumbers` and Telnyx's `phone_numbers` and count the lookups.
 */
type Carrier = "twilio" | "telnyx";
const CARRIERS: Carrier[] = ["twilio", "telnyx"];
const LOOKUP_PATH: Record<Carrier, string> = { twilio: "/IncomingPhoneNumbers.json", telnyx: "/v2/phone_numbers" };

let admin: string;
let otherAdmin: string;
beforeAll(async () => {
  admin = (await userWithToken(await createTenant(), "admin")).accessToken;
  otherAdmin = (await userWithToken(await createTenant(), "admin")).accessToken;
});

const attach = (token: string, e164: string, carrier: Carrier) =>
  api("/api/v1/phone-numbers", { method: "POST", token, body: { e164, carrier } });

async function attached(token: string): Promise<string[]> {
  const response = await api("/api/v1/phone-numbers", { token });
  return ((await response.json()) as { items: Array<{ e164: string }> }).items.map((item) => item.e164);
}

const lookups = async (carrier: Carrier, e164: string) => (await simRequests({ carrier, to: e164, path: LOOKUP_PATH[carrier] })).length;

describe.each(CARRIERS)("%s: a number is attached only when it is on the platform's account", (carrier) => {
  it("a number on the account attaches, after one lookup naming it the way the carrier's API wants", async () => {
    const e164 = randomE164();
    const response = await attach(admin, e164, carrier);
    expect(response.status).toBe(201);
    expect(await attached(admin)).toContain(e164);
    const [lookup, ...more] = await simRequests({ carrier, to: e164, path: LOOKUP_PATH[carrier] });
    expect(more).toEqual([]);
    expect(lookup?.method).toBe("GET");
    if (carrier === "twilio") expect(lookup?.query).toEqual({ PhoneNumber: e164 });
    else expect(lookup?.query["filter[phone_number]"]).toBe(e164.slice(1));
  });

  it("a number not on the account is refused with 422 number_not_owned and nothing is attached", async () => {
    const e164 = randomE164();
    await simNumberOnAccount(e164, false);
    const response = await attach(admin, e164, carrier);
    expect(response.status).toBe(422);
    expect((await errorOf(response)).code).toBe("number_not_owned");
    expect(await attached(admin)).not.toContain(e164);
    expect(await attached(otherAdmin)).not.toContain(e164);
  });

  it("the answer is cached: asked again, yes or no, the carrier is not", async () => {
    const owned = randomE164();
    expect((await attach(admin, owned, carrier)).status).toBe(201);
    const [row] = (
      (await (await api("/api/v1/phone-numbers", { token: admin })).json()) as { items: Array<{ id: string; e164: string }> }
    ).items.filter((item) => item.e164 === owned);
    expect((await api(`/api/v1/phone-numbers/${row?.id}`, { method: "DELETE", token: admin })).status).toBe(204);
    expect((await attach(otherAdmin, owned, carrier)).status).toBe(201);
    expect(await lookups(carrier, owned)).toBe(1);

    const foreign = randomE164();
    await simNumberOnAccount(foreign, false);
    expect((await attach(admin, foreign, carrier)).status).toBe(422);
    expect((await attach(admin, foreign, carrier)).status).toBe(422);
    expect(await lookups(carrier, foreign)).toBe(1);
  });

  it("a carrier that cannot answer: 503 carrier_unavailable, nothing attached, nothing cached", async () => {
    const e164 = randomE164();
    await simFault({ match: { to: e164 }, status: 503 });
    const refused = await attach(admin, e164, carrier);
    expect(refused.status).toBe(503);
    expect((await errorOf(refused)).code).toBe("carrier_unavailable");
    expect(await attached(admin)).not.toContain(e164);
    // The outage was not remembered as "not on the account": once the carrier is back, the number attaches.
    await simClearFaults({ to: e164 });
    expect((await attach(admin, e164, carrier)).status).toBe(201);
    expect(await lookups(carrier, e164)).toBe(2);
  });

  it("the same number attached twice at once: one 201, one 409 number_taken, never a 500", async () => {
    const e164 = randomE164();
    const answers = await Promise.all([attach(admin, e164, carrier), attach(otherAdmin, e164, carrier), attach(admin, e164, carrier)]);
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([201, 409, 409]);
    for (const answer of answers.filter((a) => a.status === 409)) expect((await errorOf(answer)).code).toBe("number_taken");
  });

  it("a number on the account that another tenant holds stays refused with 409", async () => {
    const e164 = randomE164();
    expect((await attach(otherAdmin, e164, carrier)).status).toBe(201);
    const response = await attach(admin, e164, carrier);
    expect(response.status).toBe(409);
    expect((await errorOf(response)).code).toBe("number_taken");
    expect(await lookups(carrier, e164)).toBe(1);
    expect(await attached(admin)).not.toContain(e164);
  });
});
