import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BusinessEngine } from "../../../workers/business/engine.ts";
import { tenantWithNumbers } from "../support/calls.ts";
import { d1Count, eventually, parseStreamTwiml, postTwilio, randomCallSid, twilioCallParams } from "../support/carriers.ts";
import { openStream, type TwilioMediaCaller } from "../support/media-caller.ts";
import { putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";
import type { ScenarioInput } from "../../simulators/providers/scenarios.ts";

/**
 * The voice agent's business tools end to end: a Twilio call from a customer's number, answered by a simulated
 * provider that issues the scripted function calls; what the agent was told and answered is read at the provider
 * simulator, what was written from D1. Tools that move money or send messages leave a draft (nothing in D1) until
 * `confirm_action`.
 */

/** The number every simulated inbound Twilio call comes from (support/carriers.ts `twilioCallParams`). */
const CALLER = "+14155550100";

const stubOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));

interface Shop {
  tenantId: string;
  number: string;
  books: BusinessEngine;
  customerId: string;
}

/** A tenant with a Twilio number on `provider`, whose customer Asha Rao calls from CALLER owing ₹1,250.00. */
async function shop(provider: "openai" | "gemini" | "deepgram"): Promise<Shop> {
  const { tenantId, numbers } = await tenantWithNumbers([{ carrier: "twilio", provider, instructions: "You run the shop's line." }]);
  const books = new BusinessEngine(env.DB, tenantId, { source: "api" });
  const asha = await books.createCustomer({ name: "Asha Rao", phone: CALLER });
  await books.createProduct({ name: "Basmati Rice 5kg", unitPrice: 45_000 });
  await books.createProduct({ name: "Toor Dal 1kg", unitPrice: 17_500 });
  await books.createInvoice({
    customerId: asha.id,
    items: [
      { productName: "Basmati Rice 5kg", quantity: 1 },
      { productName: "Toor Dal 1kg", quantity: 2 },
      { productName: "Basmati Rice 5kg", quantity: 1 },
    ],
  });
  return { tenantId, number: numbers[0]!, books, customerId: asha.id };
}

/** An inbound call to the shop's number whose provider connections follow `scenario`. */
async function call(target: Shop, scenario: ScenarioInput) {
  const key = uniqueKey("business-tools");
  await putScenario(key, scenario);
  const callSid = randomCallSid();
  const response = await postTwilio("/telephony/twilio/voice", twilioCallParams(callSid, target.number, "ringing"), {
    headers: { "X-Correlation-ID": key },
  });
  expect(response.status).toBe(200);
  const stream = parseStreamTwiml(await response.text());
  const leg = { streamUrl: stream.url, callSid, mediaToken: stream.token };
  const caller = await openStream(leg);
  return { key, caller, sessionId: stream.url.split("/").at(-1)! };
}

/** One caller turn; resolves once the provider has been given `outputs` tool results in all. */
async function turn(caller: TwilioMediaCaller, key: string, outputs: number): Promise<string[]> {
  await caller.say("hello");
  await caller.silence(600);
  const connection = await eventually(async () => {
    const [c] = await simulatorConnections(key);
    return c && c.functionCallOutputs.entries.length >= outputs && c;
  }, 200);
  return connection.functionCallOutputs.entries.map((entry) => String(entry.output));
}

const parsed = (output: string | undefined) => JSON.parse(output ?? "null") as { ok: boolean; message: string; draftId?: string };

const count = (table: string, tenantId: string) => d1Count(`SELECT COUNT(*) AS n FROM ${table} WHERE tenant_id = ?`, tenantId);

describe("voice business tools", () => {
  it("recognises the caller by number: the agent's instructions name them with their balance and open invoice", async () => {
    const target = await shop("openai");
    const { key } = await call(target, {});
    const connection = await eventually(async () => (await simulatorConnections(key))[0], 100);
    const setup = JSON.stringify(connection.setup);
    expect(setup).toContain("Asha Rao");
    expect(setup).toContain("₹1,250.00");
    expect(setup).toContain("open invoices");
    for (const name of [
      "find_customer",
      "create_invoice",
      "record_payment",
      "get_balance",
      "list_invoices",
      "schedule_reminder",
      "confirm_action",
    ]) {
      expect(setup).toContain(name);
    }
  });

  it("create_invoice drafts and writes nothing; confirm_action writes it once, however often it is repeated", async () => {
    const target = await shop("openai");
    const invoicesBefore = await count("invoices", target.tenantId);
    const ledgerBefore = await count("ledger_entries", target.tenantId);
    const { key, caller, sessionId } = await call(target, {
      toolCalls: [
        { onTurn: 1, name: "create_invoice", arguments: { customer: "Asha Rao", items: [{ product: "Toor Dal 1kg", quantity: 3 }] } },
        { onTurn: 2, name: "confirm_action", arguments: { draftId: "D1" } },
        { onTurn: 3, name: "confirm_action", arguments: { draftId: "D1" } },
      ],
    });

    const [draft] = await turn(caller, key, 1);
    expect(parsed(draft)).toMatchObject({ ok: true, draftId: "D1" });
    expect(parsed(draft).message).toContain("₹525.00");
    expect(await count("invoices", target.tenantId)).toBe(invoicesBefore);

    const [, confirmed] = await turn(caller, key, 2);
    expect(parsed(confirmed)).toMatchObject({ ok: true });
    expect(await count("invoices", target.tenantId)).toBe(invoicesBefore + 1);
    expect(await count("ledger_entries", target.tenantId)).toBe(ledgerBefore + 1);
    expect(await target.books.balance(target.customerId)).toBe(125_000 + 52_500);

    // Confirmed again under a new call id: the first answer, nothing written.
    const [, , again] = await turn(caller, key, 3);
    expect(again).toBe(confirmed);

    // The provider delivers the confirming call id again (a retry, a replayed session): the stored result, once.
    const [c] = await simulatorConnections(key);
    const confirmCall = c!.toolCalls.entries[1]!;
    await runInDurableObject(stubOf(sessionId), (instance) => {
      const voice = (instance as unknown as { voice: { handleProviderEvent(event: unknown): void } | null }).voice;
      voice!.handleProviderEvent({
        type: "tool_call",
        callId: confirmCall.id,
        name: "confirm_action",
        arguments: JSON.stringify({ draftId: "D1" }),
      });
    });
    const outputs = await turn(caller, key, 4);
    expect(outputs[3]).toBe(confirmed);
    expect(await count("invoices", target.tenantId)).toBe(invoicesBefore + 1);
    expect(await count("ledger_entries", target.tenantId)).toBe(ledgerBefore + 1);
  });
});
