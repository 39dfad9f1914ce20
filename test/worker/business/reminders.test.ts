import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ReminderScheduler } from "../../../durable-objects/reminders/reminder-scheduler.ts";
import { deliverDue } from "../../../workers/business/reminders/delivery.ts";
import { wakeReminderSchedulers } from "../../../workers/scheduled.ts";
import { database } from "../../../workers/shared/db/client.ts";
import { reminders } from "../../../workers/shared/db/schema.ts";
import { tenantScopeFor } from "../../../workers/shared/db/tenant-scope.ts";
import { createLogger } from "../../../workers/shared/logger.ts";
import { tenantWithNumbers } from "../support/calls.ts";
import { eventually, randomE164, simClearFaults, simFault, simRequests } from "../support/carriers.ts";
import { api, errorOf } from "../support/identity.ts";
import { postWhatsApp, receiptDelivery, sentTo } from "../support/whatsapp.ts";

/**
 * Payment reminders through the real Worker, the tenant's real scheduler object and D1, against the fake carrier APIs:
 * what each carrier receives (and how many times), retries, cancellation, and the claim that keeps a duplicate alarm
 * or a second object from sending twice. Reminders are due a moment after they are scheduled and the object's own
 * alarm delivers them; tests poll the API for the outcome. Each customer's phone is unique, so the fakes' records and
 * faults are keyed by it.
 */
interface Reminder {
  id: string;
  customerId: string;
  state: "pending" | "sending" | "sent" | "failed" | "cancelled";
  attempts: number;
  lastError: string | null;
  externalId: string | null;
  nextAttemptAt: string | null;
}

type Shop = Awaited<ReturnType<typeof shop>>;

async function shop(carrier: "twilio" | "telnyx" = "twilio") {
  const fixture = await tenantWithNumbers([{ carrier }]);
  return { ...fixture, from: fixture.numbers[0]! };
}

/** A customer created through the engine's API (the fixture's token is an admin's). */
async function customer(token: string, name = "Asha Rao", phone: string | null = randomE164()) {
  const response = await api("/api/v1/customers", { method: "POST", token, body: phone === null ? { name } : { name, phone } });
  expect(response.status).toBe(201);
  const { id } = (await response.json()) as { id: string };
  return { id, phone: phone ?? "" };
}

const soon = (ms = 300) => new Date(Date.now() + ms).toISOString();

async function schedule(token: string, body: Record<string, unknown>, expected = 201) {
  const response = await api("/api/v1/reminders", { method: "POST", token, body });
  expect(response.status).toBe(expected);
  return response;
}

const scheduled = async (token: string, body: Record<string, unknown>): Promise<Reminder> => (await schedule(token, body)).json();

async function remindersOf(token: string, customerId: string): Promise<Reminder[]> {
  const response = await api(`/api/v1/reminders?customerId=${customerId}`, { token });
  expect(response.status).toBe(200);
  return ((await response.json()) as { items: Reminder[] }).items;
}

async function reminder(token: string, customerId: string, id: string): Promise<Reminder> {
  const found = (await remindersOf(token, customerId)).find((r) => r.id === id);
  if (!found) throw new Error(`reminder ${id} not listed`);
  return found;
}

/** Waits for the scheduler to settle the reminder (sent or failed). */
const settled = (token: string, customerId: string, id: string) =>
  eventually(async () => {
    const current = await reminder(token, customerId, id);
    return current.state === "sent" || current.state === "failed" ? current : undefined;
  });

const messagesTo = (to: string, carrier: "twilio" | "telnyx" = "twilio") =>
  simRequests({ carrier, to, path: carrier === "twilio" ? "/Messages.json" : "/v2/messages" });

const schedulerOf = (name: string) => env.REMINDER_SCHEDULER.get(env.REMINDER_SCHEDULER.idFromName(name));
/** Runs the object's alarm handler now, whether or not an alarm is set (a duplicate or retried alarm). */
const fireAlarm = (stub: ReturnType<typeof schedulerOf>) => runInDurableObject(stub, (object) => (object as ReminderScheduler).alarm());

/** Lets `dueAt` pass (a few hundred milliseconds) without the object's alarm mattering to what the test checks. */
const until = async (iso: string) => {
  while (Date.now() <= Date.parse(iso)) await new Promise((resolve) => setTimeout(resolve, 50));
};

describe("delivery by SMS", () => {
  it("Twilio: one Messages.json request at the due time, with the message and the amount in the tenant's currency", async () => {
    const { token, from } = await shop("twilio");
    const person = await customer(token);
    const created = await scheduled(token, {
      customerId: person.id,
      dueAt: soon(),
      message: "Your bill is due.",
      amount: 125_000,
      channel: "sms",
    });
    expect(created).toMatchObject({ state: "pending", attempts: 0, channel: "sms", amount: 125_000 });

    const done = await settled(token, person.id, created.id);
    const sent = await messagesTo(person.phone);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ method: "POST", path: `/2010-04-01/Accounts/${env.TWILIO_ACCOUNT_SID}/Messages.json`, status: 201 });
    expect(sent[0]!.body).toEqual({ To: person.phone, From: from, Body: "Your bill is due. Amount due: ₹1,250.00." });
    expect(done).toMatchObject({ state: "sent", attempts: 1, lastError: null, externalId: sent[0]!.callId });
    expect(done.externalId).toMatch(/^SM[0-9a-f]{32}$/);
  });

  it("Telnyx: one /v2/messages request from the tenant's Telnyx number", async () => {
    const { token, from } = await shop("telnyx");
    const person = await customer(token);
    const created = await scheduled(token, { customerId: person.id, dueAt: soon(), message: "Please pay by Friday.", channel: "sms" });
    const done = await settled(token, person.id, created.id);
    const sent = await messagesTo(person.phone, "telnyx");
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ method: "POST", path: "/v2/messages", status: 200 });
    expect(sent[0]!.body).toEqual({ from, to: person.phone, text: "Please pay by Friday." });
    expect(done).toMatchObject({ state: "sent", attempts: 1 });
    expect(done.externalId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("exactly once", () => {
  it("duplicate alarms and a second object, all running at once on the same due reminder, send it once", async () => {
    const { token, tenantId } = await shop();
    const person = await customer(token);
    const dueAt = soon(1500);
    const created = await scheduled(token, { customerId: person.id, dueAt, message: "Race.", channel: "sms" });
    // A second object told about the same tenant (a mistaken poke, a future rename) runs beside the tenant's own.
    const own = schedulerOf(tenantId);
    const twin = schedulerOf(`${tenantId}#twin`);
    await twin.poke(tenantId);
    // Neither object's alarm may fire first on its own: the test fires four runs at once when the reminder is due.
    for (const stub of [own, twin]) await runInDurableObject(stub, (_object, state) => state.storage.deleteAlarm());
    await until(dueAt);
    await Promise.all([
      ...[own, twin].map(fireAlarm),
      // Two more runners of the same delivery, as a third and fourth object would run it.
      deliverDue(env, tenantScopeFor(env, tenantId), createLogger({ test: "race" })),
      deliverDue(env, tenantScopeFor(env, tenantId), createLogger({ test: "race" })),
    ]);
    const done = await settled(token, person.id, created.id);
    expect(done).toMatchObject({ state: "sent", attempts: 1 });
    // An alarm after the send finds nothing to claim.
    await fireAlarm(own);
    expect(await messagesTo(person.phone)).toHaveLength(1);
  });
});

describe("crashes and lost pokes", () => {
  /** A reminder row as a run left it, written straight to D1 (what a crash or a lost poke leaves behind). */
  async function leftBehind(tenantId: string, customerId: string, state: "pending" | "sending", nextAttemptAt: number) {
    const id = crypto.randomUUID();
    const now = Date.now();
    await database(env.DB)
      .insert(reminders)
      .values({
        id,
        tenantId,
        customerId,
        dueAt: now - 1000,
        channel: "sms",
        message: "Left behind.",
        state,
        attempts: state === "sending" ? 1 : 0,
        nextAttemptAt,
        source: "api",
        createdAt: now,
        updatedAt: now,
      });
    return id;
  }

  it("a reminder stuck in sending past its lease (the sender died mid-send) is failed outcome_unknown, never resent", async () => {
    const { token, tenantId } = await shop();
    const person = await customer(token);
    const id = await leftBehind(tenantId, person.id, "sending", Date.now() - 1);
    await schedulerOf(tenantId).poke(tenantId);
    await fireAlarm(schedulerOf(tenantId));
    expect(await reminder(token, person.id, id)).toMatchObject({ state: "failed", attempts: 1, lastError: "outcome_unknown" });
    expect(await messagesTo(person.phone)).toEqual([]);
  });

  it("one still within its lease is left alone (its sender may yet report)", async () => {
    const { token, tenantId } = await shop();
    const person = await customer(token);
    const id = await leftBehind(tenantId, person.id, "sending", Date.now() + 60_000);
    await schedulerOf(tenantId).poke(tenantId);
    await fireAlarm(schedulerOf(tenantId));
    expect(await reminder(token, person.id, id)).toMatchObject({ state: "sending", attempts: 1 });
    expect(await messagesTo(person.phone)).toEqual([]);
  });

  it("the cron pokes a tenant whose scheduler never heard of a due reminder, and it is sent", async () => {
    const { token, tenantId } = await shop();
    const person = await customer(token);
    const id = await leftBehind(tenantId, person.id, "pending", Date.now() - 1);
    expect(await wakeReminderSchedulers(env)).toBeGreaterThanOrEqual(1);
    expect(await settled(token, person.id, id)).toMatchObject({ state: "sent", attempts: 1 });
    expect(await messagesTo(person.phone)).toHaveLength(1);
  });

  it("the cron wakes the most overdue tenants first, so 200 others due soon cannot keep one from ever being woken", async () => {
    const { token, tenantId } = await shop();
    const person = await customer(token);
    const id = await leftBehind(tenantId, person.id, "pending", Date.now() - 60 * 60_000);
    // A run's worth of other tenants, each with a reminder due within the cron's period, whose ids sort before any.
    const now = Date.now();
    const others = Array.from({ length: 200 }, (_, i) => `00000000-${String(i).padStart(4, "0")}-${crypto.randomUUID().slice(14)}`);
    await env.DB.batch(
      others.flatMap((other) => [
        env.DB.prepare("INSERT INTO tenants (id, name, created_at) VALUES (?, 'Other shop', ?)").bind(other, now),
        env.DB.prepare("INSERT INTO customers (id, tenant_id, name, created_at, updated_at) VALUES (?, ?, 'Someone', ?, ?)").bind(
          `${other}-c`,
          other,
          now,
          now,
        ),
        env.DB.prepare(
          "INSERT INTO reminders (id, tenant_id, customer_id, due_at, channel, message, state, attempts, next_attempt_at, source, created_at, updated_at) VALUES (?, ?, ?, ?, 'sms', 'Later.', 'pending', 0, ?, 'api', ?, ?)",
        ).bind(`${other}-r`, other, `${other}-c`, now + 4 * 60_000, now + 4 * 60_000, now, now),
      ]),
    );
    expect(await wakeReminderSchedulers(env)).toBe(200);
    expect(await settled(token, person.id, id)).toMatchObject({ state: "sent", attempts: 1 });
    await env.DB.batch(
      ["reminders", "customers", "tenants"].map((table) =>
        env.DB.prepare(`DELETE FROM ${table} WHERE ${table === "tenants" ? "id" : "tenant_id"} LIKE '00000000-%'`),
      ),
    );
  });
});

describe("cancel", () => {
  it("before sending: the reminder is cancelled and nothing is sent, even when its alarm runs", async () => {
    const { token, tenantId } = await shop();
    const person = await customer(token);
    const dueAt = soon(400);
    const created = await scheduled(token, { customerId: person.id, dueAt, message: "Cancelled.", channel: "sms" });
    const cancel = await api(`/api/v1/reminders/${created.id}`, { method: "DELETE", token });
    expect(cancel.status).toBe(200);
    expect(await cancel.json()).toMatchObject({ id: created.id, state: "cancelled" });
    // Cancelling again answers the same.
    expect((await api(`/api/v1/reminders/${created.id}`, { method: "DELETE", token })).status).toBe(200);
    await until(dueAt);
    await schedulerOf(tenantId).poke(tenantId);
    await runDurableObjectAlarm(schedulerOf(tenantId));
    expect((await reminder(token, person.id, created.id)).state).toBe("cancelled");
    expect(await messagesTo(person.phone)).toEqual([]);
  });

  it("once sending has started: 409 reminder_not_pending, and the reminder is still sent once", async () => {
    const { token } = await shop();
    const person = await customer(token);
    // The carrier takes its time, so the reminder sits in `sending` while the cancel arrives.
    await simFault({ match: { to: person.phone, path: "/Messages.json" }, delayMs: 1500, times: 1 });
    const created = await scheduled(token, { customerId: person.id, dueAt: soon(), message: "Too late.", channel: "sms" });
    await eventually(async () => (await reminder(token, person.id, created.id)).state === "sending");
    const cancel = await api(`/api/v1/reminders/${created.id}`, { method: "DELETE", token });
    expect(cancel.status).toBe(409);
    expect((await errorOf(cancel)).code).toBe("reminder_not_pending");
    expect(await settled(token, person.id, created.id)).toMatchObject({ state: "sent" });
    expect(await messagesTo(person.phone)).toHaveLength(1);
  });
});

describe("failures", () => {
  it("a carrier 500 is retried after a backoff and sent on a later attempt", async () => {
    const { token } = await shop();
    const person = await customer(token);
    await simFault({ match: { to: person.phone, path: "/Messages.json" }, status: 500, times: 1 });
    const created = await scheduled(token, { customerId: person.id, dueAt: soon(), message: "Retry me.", channel: "sms" });
    const retrying = await eventually(async () => {
      const current = await reminder(token, person.id, created.id);
      return current.attempts === 1 && current.state === "pending" ? current : undefined;
    });
    expect(retrying.lastError).toBe("carrier_refused");
    expect(Date.parse(retrying.nextAttemptAt!)).toBeGreaterThan(Date.parse(created.nextAttemptAt!));
    const done = await settled(token, person.id, created.id);
    expect(done).toMatchObject({ state: "sent", attempts: 2, lastError: null });
    expect((await messagesTo(person.phone)).map((r) => r.status)).toEqual([500, 201]);
  });

  it("a reminder its scheduler could not prepare (its tenant's settings unreadable) is tried again, not failed", async () => {
    const { token, tenantId } = await shop();
    const person = await customer(token);
    const created = await scheduled(token, { customerId: person.id, dueAt: soon(1_500), message: "Still due.", channel: "sms" });
    const settings = (value: string) =>
      env.DB.prepare("INSERT OR REPLACE INTO tenant_settings (tenant_id, settings, updated_at) VALUES (?, ?, ?)")
        .bind(tenantId, value, Date.now())
        .run();
    await settings("{not json");
    // Waiting for a retry (the first or, on a slow machine, the second: 3 attempts under test, 0.2 s then 0.4 s apart).
    const retrying = await eventually(async () => {
      const current = await reminder(token, person.id, created.id);
      return current.state === "pending" && current.attempts > 0 ? current : undefined;
    });
    expect(retrying.lastError).toBe("not_sent");
    expect(await messagesTo(person.phone)).toEqual([]);
    await settings("{}");
    const done = await settled(token, person.id, created.id);
    expect(done).toMatchObject({ state: "sent", lastError: null });
    expect(done.attempts).toBeGreaterThan(retrying.attempts);
    expect(await messagesTo(person.phone)).toHaveLength(1);
  });

  it("a carrier that keeps failing: failed with the reason after the attempt limit (3 under test)", async () => {
    const { token } = await shop();
    const person = await customer(token);
    await simFault({ match: { to: person.phone, path: "/Messages.json" }, status: 503 });
    try {
      const created = await scheduled(token, { customerId: person.id, dueAt: soon(), message: "Never.", channel: "sms" });
      const done = await settled(token, person.id, created.id);
      expect(done).toMatchObject({ state: "failed", attempts: 3, lastError: "carrier_refused", externalId: null });
      expect((await messagesTo(person.phone)).map((r) => r.status)).toEqual([503, 503, 503]);
    } finally {
      await simClearFaults({ to: person.phone });
    }
  });

  it("an answer of 201 the platform cannot read is outcome_unknown, not a refusal: the carrier may have sent it", async () => {
    const { token } = await shop();
    const person = await customer(token);
    await simFault({ match: { to: person.phone, path: "/Messages.json" }, status: 201, body: { status: "queued" }, times: 1 });
    const created = await scheduled(token, { customerId: person.id, dueAt: soon(), message: "Taken?", channel: "sms" });
    expect(await settled(token, person.id, created.id)).toMatchObject({ state: "failed", attempts: 1, lastError: "outcome_unknown" });
    expect(await messagesTo(person.phone)).toHaveLength(1);
  });

  it("a refusal that a retry cannot fix (400) fails at once", async () => {
    const { token } = await shop();
    const person = await customer(token);
    await simFault({ match: { to: person.phone, path: "/Messages.json" }, status: 400, times: 1 });
    const created = await scheduled(token, { customerId: person.id, dueAt: soon(), message: "Bad number.", channel: "sms" });
    expect(await settled(token, person.id, created.id)).toMatchObject({ state: "failed", attempts: 1, lastError: "carrier_refused" });
    expect(await messagesTo(person.phone)).toHaveLength(1);
  });

  it("WhatsApp: one Cloud API message to the customer's number, the message id kept", async () => {
    const { token } = await shop();
    const person = await customer(token);
    const created = await scheduled(token, {
      customerId: person.id,
      dueAt: soon(),
      message: "Via WhatsApp.",
      amount: 2500,
      channel: "whatsapp",
    });
    const done = await settled(token, person.id, created.id);
    const sent = await sentTo(person.phone.slice(1));
    expect(sent).toEqual([{ id: done.externalId, to: person.phone.slice(1), body: "Via WhatsApp. Amount due: ₹25.00." }]);
    expect(done).toMatchObject({ state: "sent", attempts: 1 });
    expect(await simRequests({ to: person.phone })).toEqual([]);
  });

  it("WhatsApp: Meta's receipt that it could not deliver the message (past the 24-hour window) fails the reminder", async () => {
    const { token, from } = await shop();
    const [late, fine] = [await customer(token), await customer(token, "Ravi Kumar")];
    const sentReminder = async (customerId: string) => {
      const created = await scheduled(token, { customerId, dueAt: soon(), message: "Via WhatsApp.", channel: "whatsapp" });
      return settled(token, customerId, created.id);
    };
    const [lateOne, fineOne] = await Promise.all([sentReminder(late.id), sentReminder(fine.id)]);
    expect([lateOne.state, fineOne.state]).toEqual(["sent", "sent"]);

    const receipt = (id: string, status: string, errors?: unknown[]) => ({
      id,
      status,
      timestamp: String(Math.floor(Date.now() / 1000)),
      recipient_id: late.phone.slice(1),
      ...(errors ? { errors } : {}),
    });
    const failed = receipt(lateOne.externalId!, "failed", [{ code: 131047, title: "Re-engagement message" }]);
    const business = from.slice(1);
    // Receipts for the other reminder say it arrived; one for a message nobody here sent is ignored.
    const others = [receipt(fineOne.externalId!, "delivered"), receipt("wamid.UNKNOWN", "failed", [{ code: 131026 }])];
    expect((await postWhatsApp(receiptDelivery(business, [failed, ...others]))).status).toBe(200);
    expect(await reminder(token, late.id, lateOne.id)).toMatchObject({
      state: "failed",
      lastError: "whatsapp_131047",
      externalId: lateOne.externalId,
    });
    expect(await reminder(token, fine.id, fineOne.id)).toMatchObject({ state: "sent", lastError: null });

    // Meta delivering the receipt again changes nothing, and is still acknowledged.
    expect((await postWhatsApp(receiptDelivery(business, [failed]))).status).toBe(200);
    expect(await reminder(token, late.id, lateOne.id)).toMatchObject({ state: "failed", lastError: "whatsapp_131047" });
  });
});

describe("validation", () => {
  it("a past dueAt is 422 reminder_in_past and nothing is stored", async () => {
    const { token } = await shop();
    const person = await customer(token);
    const past = await schedule(
      token,
      { customerId: person.id, dueAt: new Date(Date.now() - 60_000).toISOString(), message: "Late.", channel: "sms" },
      422,
    );
    expect((await errorOf(past)).code).toBe("reminder_in_past");
    expect(await remindersOf(token, person.id)).toEqual([]);
  });

  it("refuses a date more than a year ahead, a customer without a phone, a fractional amount, an overlong message", async () => {
    const { token } = await shop();
    const person = await customer(token);
    const base = { customerId: person.id, dueAt: soon(60_000), message: "Hi.", channel: "sms" };
    const far = await schedule(token, { ...base, dueAt: new Date(Date.now() + 400 * 86_400_000).toISOString() }, 422);
    expect((await errorOf(far)).code).toBe("reminder_too_far");
    const phoneless = await customer(token, "No Phone", null);
    const unreachable = await schedule(token, { ...base, customerId: phoneless.id, channel: "call" }, 422);
    expect((await errorOf(unreachable)).code).toBe("customer_unreachable");
    await schedule(token, { ...base, amount: 12.5 }, 400);
    await schedule(token, { ...base, amount: -100 }, 400);
    await schedule(token, { ...base, message: "x".repeat(481) }, 400);
    expect(await remindersOf(token, person.id)).toEqual([]);
  });
});

describe("Idempotency-Key", () => {
  it("a retried POST answers the first reminder and schedules nothing more; the key with another body is 422", async () => {
    const { token } = await shop();
    const person = await customer(token);
    const body = { customerId: person.id, dueAt: soon(), message: "Once only.", amount: 5000, channel: "sms" };
    const headers = { "Idempotency-Key": `reminder-${crypto.randomUUID()}` };
    const first = await api("/api/v1/reminders", { method: "POST", token, body, headers });
    const again = await api("/api/v1/reminders", { method: "POST", token, body, headers });
    expect([first.status, again.status]).toEqual([201, 201]);
    const created = (await first.json()) as Reminder;
    expect(((await again.json()) as Reminder).id).toBe(created.id);
    const reused = await api("/api/v1/reminders", { method: "POST", token, body: { ...body, amount: 6000 }, headers });
    expect(reused.status).toBe(422);
    expect((await errorOf(reused)).code).toBe("idempotency_key_reused");
    expect((await remindersOf(token, person.id)).map((r) => r.id)).toEqual([created.id]);
    await settled(token, person.id, created.id);
    expect(await messagesTo(person.phone)).toHaveLength(1);
  });
});

describe("tenant isolation", () => {
  it("another tenant cannot see, cancel or schedule against this tenant's reminders and customers", async () => {
    const mine: Shop = await shop();
    const theirs: Shop = await shop();
    const person = await customer(mine.token);
    const created = await scheduled(mine.token, { customerId: person.id, dueAt: soon(60_000), message: "Mine.", channel: "sms" });
    expect(await remindersOf(theirs.token, person.id)).toEqual([]);
    expect((await api(`/api/v1/reminders/${created.id}`, { method: "DELETE", token: theirs.token })).status).toBe(404);
    const foreign = await schedule(theirs.token, { customerId: person.id, dueAt: soon(60_000), message: "Theirs.", channel: "sms" }, 404);
    expect((await errorOf(foreign)).code).toBe("customer_not_found");
    expect((await reminder(mine.token, person.id, created.id)).state).toBe("pending");
  });
});

describe("delivery by call", () => {
  it("places one outbound call whose agent is told the customer's name, the message and the amount", async () => {
    const { token, from } = await shop("twilio");
    const person = await customer(token, "Ravi Kumar");
    const created = await scheduled(token, {
      customerId: person.id,
      dueAt: soon(),
      message: "Your March invoice is unpaid.",
      amount: 49_950,
      channel: "call",
    });
    const done = await settled(token, person.id, created.id);
    expect(done).toMatchObject({ state: "sent", attempts: 1 });
    const dialled = await simRequests({ carrier: "twilio", to: person.phone, path: "/Calls.json" });
    expect(dialled).toHaveLength(1);
    expect(dialled[0]!.body).toMatchObject({ To: person.phone, From: from });
    const session = await api(`/api/v1/sessions/${done.externalId}`, { token });
    expect(session.status).toBe(200);
    const { instructions } = (await session.json()) as { instructions: string };
    expect(instructions).toContain("Ravi Kumar");
    expect(instructions).toContain("Your March invoice is unpaid.");
    expect(instructions).toContain("₹499.50");
  });
});
