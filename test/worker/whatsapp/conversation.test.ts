import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { BusinessEngine } from "../../../workers/business/engine.ts";
import { CLAIM_LEASE_MS, runOnce } from "../../../workers/business/idempotency.ts";
import { tenantScopeFor } from "../../../workers/shared/db/tenant-scope.ts";
import { TENANT_SETTINGS_DEFAULTS, writeTenantSettingsChange } from "../../../workers/shared/tenant-settings.ts";
import { d1Count, eventually } from "../support/carriers.ts";
import { createTenant } from "../support/identity.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";
import {
  businessNumber,
  delivery,
  postWhatsApp,
  randomMessageId,
  randomWaId,
  replyNumber,
  sentTo,
  textDelivery,
} from "../support/whatsapp.ts";

/**
 * Whole conversations through the real Worker: signed deliveries in, the business engine's books in D1, replies read
 * at the simulated Cloud API. The test platform has an OpenAI key, but none of these texts is scripted at the
 * simulated model, which answers 503: every reading here is the offline parser's, reached by the model-failure path.
 */
async function shop() {
  const tenantId = await createTenant("Kirana");
  const number = await businessNumber(tenantId);
  const owner = randomWaId();
  await writeTenantSettingsChange(tenantScopeFor(env, tenantId), ["whatsappOperators"], {
    ...TENANT_SETTINGS_DEFAULTS,
    whatsappOperators: [`+${owner}`],
  });
  const engine = new BusinessEngine(env.DB, tenantId, { source: "api" }, env.CACHE);
  const rice = await engine.createProduct({ name: "Rice", unitPrice: 6000, unit: "kg" });
  await engine.createProduct({ name: "Eggs", unitPrice: 600 });
  const priyaWa = randomWaId();
  const rahul = await engine.createCustomer({ name: "Rahul" });
  const priya = await engine.createCustomer({ name: "Priya", phone: `+${priyaWa}` });
  await engine.createInvoice({ customerId: priya.id, items: [{ productName: "Rice", quantity: 10 }] });
  let sent = 0;
  const counts = new Map<string, number>();
  /** Sends `text` from `waId` (or the delivery given, as Meta would deliver it) and returns the platform's reply to it. */
  const say = async (waId: string, text: string, body = textDelivery(number, waId, text)) => {
    expect((await postWhatsApp(body)).status).toBe(200);
    const next = (counts.get(waId) ?? 0) + 1;
    counts.set(waId, next);
    sent++;
    return replyNumber(waId, next);
  };
  return { tenantId, number, engine, owner, priyaWa, rahul, priya, rice, say, sent: () => sent };
}

// Whatever each scenario did, every customer's balance is the sum of their ledger.
afterEach(() => expectLedgerInvariant());

describe("WhatsApp conversations", () => {
  it("creates an invoice, records a payment and answers balances, writing each confirmed draft once", async () => {
    const { engine, owner, priyaWa, rahul, priya, say } = await shop();

    const draft = await say(owner, "Create an invoice for Rahul: 2 kg rice and a dozen eggs");
    expect(draft).toBe("Invoice for Rahul: 2 kg Rice ₹120.00, 12 × Eggs ₹72.00. Total ₹192.00. Reply YES to create it.");
    expect(await d1Count("SELECT count(*) AS n FROM invoices WHERE customer_id = ?", rahul.id)).toBe(0);
    expect(await say(owner, "yes")).toMatch(/^Invoice INV-[0-9A-F]{8} for Rahul: ₹192\.00\. Balance ₹192\.00\.$/);
    // A second "yes" has no draft left to confirm: nothing more is written.
    expect(await say(owner, "yes")).toMatch(/did not understand/);
    expect(await d1Count("SELECT count(*) AS n FROM invoices WHERE customer_id = ?", rahul.id)).toBe(1);

    expect(await say(owner, "Priya paid 500 by UPI")).toBe("Record ₹500.00 from Priya by UPI? Reply YES to record it.");
    expect(await say(owner, "YES")).toBe("Recorded ₹500.00 from Priya. Balance ₹100.00.");

    expect(await say(priyaWa, "What is my balance?")).toBe("Your balance is ₹100.00.");
    expect(await say(owner, "What's Rahul's balance?")).toBe("Rahul's balance is ₹192.00.");

    const ledger = await engine.ledger(priya.id);
    expect(ledger.items.map((entry) => [entry.kind, entry.direction, entry.amount, entry.balanceAfter, entry.mode, entry.source])).toEqual([
      ["invoice", "debit", 60_000, 60_000, null, "api"],
      ["payment", "credit", 50_000, 10_000, "upi", "whatsapp"],
    ]);
    expect((await engine.ledger(rahul.id)).items.map((entry) => [entry.amount, entry.balanceAfter, entry.source])).toEqual([
      [19_200, 19_200, "whatsapp"],
    ]);
  });

  it("a yes writes the invoice as it was shown, though its product's price changed in between", async () => {
    const { engine, owner, rahul, rice, say } = await shop();
    expect(await say(owner, "Create an invoice for Rahul: 2 kg rice")).toMatch(/Total ₹120\.00\. Reply YES/);
    await engine.updateProduct(rice.id, { unitPrice: 9000 });
    expect(await say(owner, "yes")).toMatch(/^Invoice INV-[0-9A-F]{8} for Rahul: ₹120\.00\. Balance ₹120\.00\.$/);
    const [invoice] = (await engine.listInvoices({ customerId: rahul.id })).items;
    expect(invoice).toMatchObject({ total: 12_000, items: [expect.objectContaining({ productId: rice.id, unitPrice: 6000 })] });
  });

  it("a yes sent before the draft it reaches (delivered late, or out of order) confirms nothing", async () => {
    const { number, engine, owner, rahul, priya, say } = await shop();
    expect(await say(owner, "Rahul paid 100 by cash")).toMatch(/Reply YES/);
    // The owner's "yes" to Rahul's draft, sent a minute ago, that Meta delivers only now (a retry after a 500).
    const late = delivery(number, {
      from: owner,
      id: randomMessageId(),
      timestamp: String(Math.floor(Date.now() / 1000) - 60),
      type: "text",
      text: { body: "yes" },
    });
    expect(await say(owner, "Priya paid 5000 by UPI")).toBe("Record ₹5,000.00 from Priya by UPI? Reply YES to record it.");
    expect(await say(owner, "yes", late)).toBe(
      "That reply was sent before this draft was shown, so nothing was written. Reply YES to confirm it.",
    );
    expect((await engine.ledger(priya.id)).items.map((entry) => entry.kind)).toEqual(["invoice"]);
    expect((await engine.ledger(rahul.id)).items).toEqual([]);
    // The draft is still there for the owner's own answer.
    expect(await say(owner, "yes")).toBe("Recorded ₹5,000.00 from Priya. Balance -₹4,400.00.");
  });

  it("writes nothing when the person says no", async () => {
    const { rahul, owner, say } = await shop();
    expect(await say(owner, "Rahul paid 1,000 by cash")).toMatch(/Reply YES/);
    expect(await say(owner, "no")).toBe("Cancelled. Nothing was written.");
    expect(await d1Count("SELECT count(*) AS n FROM ledger_entries WHERE customer_id = ?", rahul.id)).toBe(0);
  });

  it("offers candidates for a customer it cannot name for sure, never a guess", async () => {
    const { owner, say } = await shop();
    const reply = await say(owner, "Rahool paid 200 by cash");
    expect(reply).toMatch(/Did you mean: Rahul\?$/);
    expect(await d1Count("SELECT count(*) AS n FROM ledger_entries WHERE kind = 'payment' AND amount = 20000")).toBe(0);
  });

  it("lets a customer read only their own account", async () => {
    const { priyaWa, priya, say } = await shop();
    expect(await say(priyaWa, "Priya paid 500 by UPI")).toMatch(/Only the shop can do that/);
    expect(await say(priyaWa, "What's Rahul's balance?")).toMatch(/Only the shop can do that/);
    expect(await say(priyaWa, "Show my invoices")).toMatch(/^Recent invoices:\nINV-[0-9A-F]{8} ₹600\.00, \d{4}-\d{2}-\d{2}$/);
    expect(await d1Count("SELECT count(*) AS n FROM ledger_entries WHERE customer_id = ?", priya.id)).toBe(1);
  });

  it("records the conversation: the inbound message with its intent, and the reply", async () => {
    const { tenantId, owner, say } = await shop();
    await say(owner, "What's Rahul's balance?");
    // The inbound row is marked once the reply has gone: wait for it.
    const rows = await eventually(async () => {
      const found = await env.DB.prepare(
        "SELECT direction, status, intent FROM whatsapp_messages WHERE tenant_id = ? AND wa_id = ? ORDER BY created_at",
      )
        .bind(tenantId, owner)
        .all<{ direction: string; status: string; intent: string | null }>();
      return found.results[0]?.status === "answered" ? found : null;
    });
    expect(rows.results.map((row) => [row.direction, row.status])).toEqual([
      ["inbound", "answered"],
      ["outbound", "sent"],
    ]);
    expect(JSON.parse(rows.results[0]!.intent ?? "null")).toEqual({ kind: "get_balance", customer: "Rahul" });
    expect(await sentTo(owner)).toHaveLength(1);
  });
});

describe("WhatsApp reminders", () => {
  it("schedules a WhatsApp reminder for 10:00 on the day said, in the shop's zone, and Priya gets it then, once", async () => {
    const { tenantId, owner, priya, priyaWa, say } = await shop();
    expect(await say(owner, "Remind Priya to pay 1,000 by Friday")).toMatch(
      /^Reminder set for Priya on Fri, \d{1,2} \w{3}, 10:00 am for ₹1,000\.00\.$/,
    );
    const row = await env.DB.prepare("SELECT channel, amount, due_at, source FROM reminders WHERE tenant_id = ? AND customer_id = ?")
      .bind(tenantId, priya.id)
      .first<{ channel: string; amount: number; due_at: number; source: string }>();
    expect(row).toMatchObject({ channel: "whatsapp", amount: 100_000, source: "whatsapp" });
    const local = new Intl.DateTimeFormat("en-GB", {
      timeZone: "Asia/Kolkata",
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
    }).format(row!.due_at);
    expect(local).toBe("Fri 10:00");

    // Friday 10:00 comes (the row's time moved to now, not the clock): the tenant's scheduler sends it by WhatsApp.
    await env.DB.prepare("UPDATE reminders SET due_at = ?1, next_attempt_at = ?1 WHERE tenant_id = ?2").bind(Date.now(), tenantId).run();
    const scheduler = env.REMINDER_SCHEDULER.get(env.REMINDER_SCHEDULER.idFromName(tenantId));
    await scheduler.poke(tenantId);
    await runDurableObjectAlarm(scheduler);
    await runDurableObjectAlarm(scheduler);
    const delivered = await eventually(async () => {
      const messages = (await sentTo(priyaWa)).filter((message) => message.body.includes("Amount due"));
      return messages.length > 0 ? messages : null;
    });
    expect(delivered.map((message) => message.body)).toEqual([expect.stringContaining("Amount due: ₹1,000.00.")]);
    const state = await env.DB.prepare("SELECT state FROM reminders WHERE tenant_id = ?").bind(tenantId).first<{ state: string }>();
    expect(state?.state).toBe("sent");
  });

  it("says why a reminder cannot be set for a customer with no number", async () => {
    const { owner, say } = await shop();
    expect(await say(owner, "Remind Rahul to pay tomorrow")).toMatch(/no phone number.*Nothing was written\.$/);
  });
});

describe("WhatsApp confirmations", () => {
  it("writes a draft once even when a second reader saw it before it was cleared", async () => {
    const { tenantId, owner, rahul, say } = await shop();
    expect(await say(owner, "Rahul paid 250 by cash")).toMatch(/Reply YES/);
    // Two "yes" messages handled at once can both read the draft before either clears it: replay that by putting the
    // draft the first one confirmed back where the second would have read it.
    const key = `whatsapp:conversation:${tenantId}:${owner}`;
    const draft = await env.CACHE.get(key);
    expect(await say(owner, "yes")).toBe("Recorded ₹250.00 from Rahul. Balance -₹250.00.");
    await env.CACHE.put(key, draft!);
    expect(await say(owner, "yes")).toBe("That was already done.");
    expect(await d1Count("SELECT count(*) AS n FROM ledger_entries WHERE customer_id = ?", rahul.id)).toBe(1);
  });

  it("a yes whose Worker died between claiming the draft and writing it: never 'already done'; once its lease is out, written once", async () => {
    const { tenantId, owner, rahul, say } = await shop();
    expect(await say(owner, "Rahul paid 300 by upi")).toMatch(/Reply YES/);
    const key = `whatsapp:conversation:${tenantId}:${owner}`;
    const draft = (await env.CACHE.get(key))!;
    const { pending } = JSON.parse(draft) as { pending: { id: string } };
    // Two deliveries of one "yes" read the draft before either cleared it; the first claimed it and died before its
    // write ran (a write that never returns). The second, and later readers of the same draft, are replayed by
    // putting the draft back where they would have read it.
    void runOnce(tenantScopeFor(env, tenantId), tenantId, "whatsapp_confirm", pending.id, pending, {
      write: () => new Promise(() => {}),
      answer: () => Promise.reject(new Error("never written")),
    });
    await eventually(async () => (await d1Count("SELECT count(*) AS n FROM idempotency_keys WHERE key = ?", pending.id)) === 1);
    expect(await say(owner, "yes")).toBe("That is being done right now.");
    expect(await d1Count("SELECT count(*) AS n FROM ledger_entries WHERE customer_id = ?", rahul.id)).toBe(0);

    await env.DB.prepare("UPDATE idempotency_keys SET created_at = ? WHERE key = ?")
      .bind(Date.now() - CLAIM_LEASE_MS - 1_000, pending.id)
      .run();
    await env.CACHE.put(key, draft);
    expect(await say(owner, "yes")).toBe("Recorded ₹300.00 from Rahul. Balance -₹300.00.");
    // The key keeps whose write it was, not the reply's name and balance.
    const stored = await env.DB.prepare("SELECT response_body FROM idempotency_keys WHERE key = ?")
      .bind(pending.id)
      .first<string>("response_body");
    expect(JSON.parse(stored!)).toEqual({ customerId: rahul.id });
    await env.CACHE.put(key, draft);
    expect(await say(owner, "yes")).toBe("That was already done.");
    expect(await d1Count("SELECT count(*) AS n FROM ledger_entries WHERE customer_id = ?", rahul.id)).toBe(1);
    await expectLedgerInvariant(tenantId);
  });
});
