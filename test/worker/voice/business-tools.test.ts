import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BusinessEngine } from "../../../workers/business/engine.ts";
import type { ScenarioInput } from "../../simulators/providers/scenarios.ts";
import { tenantWithNumbers } from "../support/calls.ts";
import { d1Count, eventually, parseStreamTwiml, postTwilio, randomCallSid, simRequests, twilioCallParams } from "../support/carriers.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";
import { openStream, type TwilioMediaCaller } from "../support/media-caller.ts";
import { forgetProviderHealth } from "../support/provider-health.ts";
import { putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";
import { connectionsOf, switchTo } from "../support/switching.ts";

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
  token: string;
  number: string;
  books: BusinessEngine;
  customerId: string;
}

/** A tenant with a Twilio number on `provider`, whose customer Asha Rao calls from CALLER owing ₹1,250.00. */
async function shop(provider: "openai" | "gemini" | "deepgram"): Promise<Shop & { dalId: string }> {
  const { tenantId, numbers, token } = await tenantWithNumbers([{ carrier: "twilio", provider, instructions: "You run the shop's line." }]);
  const books = new BusinessEngine(env.DB, tenantId, { source: "api" }, env.CACHE);
  const asha = await books.createCustomer({ name: "Asha Rao", phone: CALLER });
  await books.createProduct({ name: "Basmati Rice 5kg", unitPrice: 45_000 });
  const dal = await books.createProduct({ name: "Toor Dal 1kg", unitPrice: 17_500 });
  await books.createInvoice({
    customerId: asha.id,
    items: [
      { productName: "Basmati Rice 5kg", quantity: 1 },
      { productName: "Toor Dal 1kg", quantity: 2 },
      { productName: "Basmati Rice 5kg", quantity: 1 },
    ],
  });
  return { tenantId, token, number: numbers[0]!, books, customerId: asha.id, dalId: dal.id };
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
  }, 500);
  return connection.functionCallOutputs.entries.map((entry) => outputText(entry.output));
}

/** A tool result as the provider holds it: OpenAI and Deepgram the string, Gemini `{ result }`. */
const outputText = (output: unknown) =>
  typeof output === "string" ? output : String((output as { result?: unknown } | null)?.result ?? JSON.stringify(output));

const parsed = (output: string | undefined) => JSON.parse(output ?? "null") as { ok: boolean; message: string; draftId?: string };

const count = (table: string, tenantId: string) => d1Count(`SELECT COUNT(*) AS n FROM ${table} WHERE tenant_id = ?`, tenantId);

// Whatever each scenario did, every customer's balance is the sum of their ledger.
afterEach(() => expectLedgerInvariant());

describe("voice business tools", () => {
  // A test's provider errors (an injected call id the simulator never issued is one) must not fail the next call over.
  beforeEach(forgetProviderHealth);

  it("recognises the caller by number: the agent's instructions name them with their balance and open invoice", async () => {
    const target = await shop("openai");
    const { key } = await call(target, {});
    const connection = await eventually(async () => (await simulatorConnections(key)).find((each) => each.setup), 100);
    const setup = JSON.stringify(connection.setup);
    expect(setup).toContain("Asha Rao");
    expect(setup).toContain("₹1,250.00");
    expect(setup).toContain("open invoices");
    for (const name of [
      "find_customer",
      "create_invoice",
      "record_payment",
      "schedule_reminder",
      "get_balance",
      "list_invoices",
      "confirm_action",
    ]) {
      expect(setup).toContain(name);
    }
  });

  it("carries the caller's context to the provider a switch moves the call to", async () => {
    const target = await shop("openai");
    const { key, sessionId } = await call(target, {});
    await eventually(async () => (await simulatorConnections(key)).length === 1, 100);
    const switched = await switchTo(target.token, sessionId, { provider: "gemini", immediate: true });
    expect(switched.status).toBe(200);
    const gemini = await eventually(async () => (await connectionsOf(key, "gemini")).find((each) => each.setup), 100);
    expect(JSON.stringify(gemini.setup)).toContain("balance owed: ₹1,250.00");
  });

  it("a D1 failure at call start means no context: the call is answered and the agent still talks", async () => {
    const target = await shop("openai");
    await env.DB.exec("ALTER TABLE customers RENAME TO customers_offline");
    try {
      const { key, caller } = await call(target, {});
      const connection = await eventually(async () => (await simulatorConnections(key)).find((each) => each.setup), 100);
      expect(JSON.stringify(connection.setup)).not.toContain("Asha Rao");
      await caller.say("hello");
      await caller.silence(600);
      await caller.until(() => caller.agentAudioBytes() > 0);
    } finally {
      await env.DB.exec("ALTER TABLE customers_offline RENAME TO customers");
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

  it("a confirmed invoice is written as it was read back, though its product's price changed in between", async () => {
    const target = await shop("openai");
    const { key, caller } = await call(target, {
      toolCalls: [
        { onTurn: 1, name: "create_invoice", arguments: { customer: "Asha Rao", items: [{ product: "Toor Dal 1kg", quantity: 3 }] } },
        { onTurn: 2, name: "confirm_action", arguments: { draftId: "D1" } },
      ],
    });
    const [draft] = await turn(caller, key, 1);
    expect(parsed(draft).message).toContain("₹525.00");
    await target.books.updateProduct(target.dalId, { unitPrice: 20_000 });
    const [, confirmed] = await turn(caller, key, 2);
    expect(parsed(confirmed)).toMatchObject({ ok: true });
    expect(parsed(confirmed).message).toContain("₹525.00");
    expect(await target.books.balance(target.customerId)).toBe(125_000 + 52_500);
  });

  it("two confirmations of one draft at once write it once", async () => {
    const target = await shop("openai");
    const invoicesBefore = await count("invoices", target.tenantId);
    const { key, caller, sessionId } = await call(target, {
      toolCalls: [
        { onTurn: 1, name: "create_invoice", arguments: { customer: "Asha Rao", items: [{ product: "Toor Dal 1kg", quantity: 1 }] } },
      ],
    });
    await turn(caller, key, 1);
    // Two call ids confirming D1 at once (a model that repeats itself), run by the call's own tool runner together.
    const results = await runInDurableObject(stubOf(sessionId), (instance) => {
      const { tools, voice } = instance as unknown as {
        tools: { run(callId: string, name: string, args: string, host: unknown): Promise<{ result: string }> };
        voice: unknown;
      };
      const confirmation = JSON.stringify({ draftId: "D1" });
      return Promise.all(["call_twin_a", "call_twin_b"].map((callId) => tools.run(callId, "confirm_action", confirmation, voice)));
    });
    expect(results.map(({ result }) => parsed(result).ok).sort()).toEqual([false, true]);
    expect(await count("invoices", target.tenantId)).toBe(invoicesBefore + 1);
  });

  it("record_payment drafts and writes nothing; confirm_action credits the ledger; a wrong or expired draft is a sentence", async () => {
    const target = await shop("openai");
    const ledgerBefore = await count("ledger_entries", target.tenantId);
    const { key, caller, sessionId } = await call(target, {
      toolCalls: [
        { onTurn: 1, name: "record_payment", arguments: { customer: "asha rao", amount: 500, mode: "upi", reference: "UPI-881" } },
        { onTurn: 2, name: "confirm_action", arguments: { draftId: "D7" } },
        { onTurn: 3, name: "confirm_action", arguments: { draftId: "d1" } },
        { onTurn: 4, name: "record_payment", arguments: { customer: "Asha Rao", amount: "100.50", mode: "cash" } },
        { onTurn: 5, name: "confirm_action", arguments: { draftId: "D2" } },
      ],
    });

    const [draft] = await turn(caller, key, 1);
    expect(parsed(draft)).toMatchObject({ ok: true, draftId: "D1", message: "Payment of ₹500.00 by upi from Asha Rao." });
    expect(await count("ledger_entries", target.tenantId)).toBe(ledgerBefore);

    const [, wrong] = await turn(caller, key, 2);
    expect(parsed(wrong)).toMatchObject({ ok: false, message: expect.stringContaining("no draft D7") });

    const [, , confirmed] = await turn(caller, key, 3);
    expect(parsed(confirmed)).toMatchObject({ ok: true, balance: 75_000 });
    expect(await count("ledger_entries", target.tenantId)).toBe(ledgerBefore + 1);
    const ledger = await target.books.ledger(target.customerId);
    expect(ledger.items.at(-1)).toMatchObject({ kind: "payment", direction: "credit", amount: 50_000, mode: "upi", source: "voice" });

    await turn(caller, key, 4);
    // The caller took too long to say yes: the draft is past its life (set so here rather than waited for).
    await runInDurableObject(stubOf(sessionId), (_instance, state) => {
      state.storage.sql.exec("UPDATE tool_drafts SET expires_at = 0 WHERE id = 'D2'");
    });
    const outputs = await turn(caller, key, 5);
    expect(parsed(outputs[4])).toMatchObject({ ok: false, message: expect.stringContaining("expired") });
    expect(await count("ledger_entries", target.tenantId)).toBe(ledgerBefore + 1);
  });

  it("get_balance, list_invoices and find_customer answer at once; a name that fits two customers is a question", async () => {
    const target = await shop("openai");
    await target.books.createCustomer({ name: "Rahul Sharma" });
    await target.books.createCustomer({ name: "Rahul Verma" });
    const { key, caller } = await call(target, {
      toolCalls: [
        { onTurn: 1, name: "get_balance", arguments: { customer: "Asha Rao" } },
        { onTurn: 2, name: "list_invoices", arguments: { customer: "Asha Rao" } },
        { onTurn: 3, name: "find_customer", arguments: { query: "Rahul" } },
        { onTurn: 4, name: "find_customer", arguments: { query: "Asha Rau" } },
        { onTurn: 5, name: "create_invoice", arguments: { customer: "Rahul", items: [{ product: "Toor Dal 1kg", quantity: 1 }] } },
      ],
    });
    const [balance] = await turn(caller, key, 1);
    expect(parsed(balance)).toMatchObject({ ok: true, message: "Asha Rao owes ₹1,250.00.", balance: 125_000 });
    const [, invoices] = await turn(caller, key, 2);
    expect(parsed(invoices).message).toMatch(/^Asha Rao's latest invoices: ₹1,250\.00 on \d{4}-\d{2}-\d{2} \(open\)\.$/);
    const [, , ambiguous] = await turn(caller, key, 3);
    expect(parsed(ambiguous)).toEqual({ ok: false, message: "I found Rahul Sharma and Rahul Verma — which one?" });
    const [, , , misheard] = await turn(caller, key, 4);
    expect(parsed(misheard)).toMatchObject({ ok: true, customer: { id: target.customerId, name: "Asha Rao" } });
    // A money tool never guesses either: nothing is drafted for "Rahul".
    const outputs = await turn(caller, key, 5);
    expect(parsed(outputs[4])).toMatchObject({ ok: false });
    expect(parsed(outputs[4]).draftId).toBeUndefined();
  });

  it("is scoped to the call's tenant: another tenant's customer is neither recognised nor found", async () => {
    const other = await shop("openai");
    await other.books.createCustomer({ name: "Zed Outsider" });
    const { tenantId, numbers, token } = await tenantWithNumbers([{ carrier: "twilio", provider: "openai" }]);
    const target: Shop = {
      tenantId,
      token,
      number: numbers[0]!,
      books: new BusinessEngine(env.DB, tenantId, { source: "api" }, env.CACHE),
      customerId: "",
    };
    const { key, caller } = await call(target, {
      toolCalls: [
        { onTurn: 1, name: "find_customer", arguments: { query: "Zed Outsider" } },
        { onTurn: 2, name: "get_balance", arguments: { customer: other.customerId } },
      ],
    });
    const [notFound] = await turn(caller, key, 1);
    expect(parsed(notFound).ok).toBe(false);
    const [, byId] = await turn(caller, key, 2);
    expect(parsed(byId).ok).toBe(false);
    const [connection] = await simulatorConnections(key);
    // The same caller number is Asha Rao's in the other tenant, not in this one.
    expect(JSON.stringify(connection!.setup)).not.toContain("Asha Rao");
    expect(JSON.stringify(connection!.setup)).not.toContain("Caller recognised");
  });

  it("reaches Gemini in its function format: the declarations in setup, the call and its result round-trip", async () => {
    const target = await shop("gemini");
    const { key, caller } = await call(target, { toolCalls: [{ onTurn: 1, name: "get_balance", arguments: { customer: "Asha Rao" } }] });
    const [result] = await turn(caller, key, 1);
    expect(parsed(result)).toMatchObject({ ok: true, message: "Asha Rao owes ₹1,250.00." });
    const [connection] = await simulatorConnections(key);
    const setup = connection!.setup as {
      setup: { tools: Array<{ functionDeclarations: Array<{ name: string }> }>; systemInstruction: unknown };
    };
    expect(setup.setup.tools[0]!.functionDeclarations.map((declaration) => declaration.name)).toContain("confirm_action");
    expect(JSON.stringify(setup.setup.systemInstruction)).toContain("Asha Rao");
  });

  it("the whole call: an invoice, a payment and a reminder, each drafted and confirmed; the reminder is then sent by SMS", async () => {
    const target = await shop("openai");
    const message = `Pay your balance, ref ${crypto.randomUUID().slice(0, 8)}.`;
    // A few seconds ahead: enough for the draft and its confirmation, soon enough for the test to see it sent.
    const dueAt = new Date(Date.now() + 20_000).toISOString();
    const { key, caller } = await call(target, {
      toolCalls: [
        { onTurn: 1, name: "create_invoice", arguments: { customer: "Asha Rao", items: [{ product: "Basmati Rice 5kg", quantity: 2 }] } },
        { onTurn: 2, name: "confirm_action", arguments: { draftId: "D1" } },
        { onTurn: 3, name: "record_payment", arguments: { customer: "Asha Rao", amount: 1000, mode: "cash" } },
        { onTurn: 4, name: "confirm_action", arguments: { draftId: "D2" } },
        { onTurn: 5, name: "schedule_reminder", arguments: { customer: "Asha Rao", dueAt, message, amount: 1150 } },
        { onTurn: 6, name: "confirm_action", arguments: { draftId: "D3" } },
      ],
    });
    for (let outputs = 1; outputs <= 4; outputs++) await turn(caller, key, outputs);
    expect(await target.books.balance(target.customerId)).toBe(125_000 + 90_000 - 100_000);

    const drafted = await turn(caller, key, 5);
    expect(parsed(drafted[4])).toMatchObject({ ok: true, draftId: "D3", message: expect.stringContaining("amount due ₹1,150.00") });
    expect(await count("reminders", target.tenantId)).toBe(0);
    const confirmed = await turn(caller, key, 6);
    expect(parsed(confirmed[5])).toMatchObject({ ok: true });
    const [row] = (
      await env.DB.prepare("SELECT state, channel, amount, source FROM reminders WHERE tenant_id = ?").bind(target.tenantId).all()
    ).results;
    expect(row).toMatchObject({ channel: "sms", amount: 115_000, source: "voice" });

    const sent = await eventually(async () => {
      const texts = (await simRequests({ carrier: "twilio", to: CALLER, path: "/Messages.json" })).filter((request) =>
        String((request.body as Record<string, string>).Body).includes(message),
      );
      return texts.length > 0 && texts;
    }, 1000);
    expect(sent).toHaveLength(1);
    expect((sent[0]!.body as Record<string, string>).Body).toBe(`${message} Amount due: ₹1,150.00.`);
  }, 60_000);
});
