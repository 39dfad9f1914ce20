import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runSweep } from "../../../workers/privacy/erasure-sweep.ts";
import { resumeErasures } from "../../../workers/scheduled.ts";
import { sessionForCarrierCall } from "../../../workers/shared/db/directory.ts";
import { createLogger } from "../../../workers/shared/logger.ts";
import { callObject } from "../../../workers/shared/session-ids.ts";
import { get, post } from "../support/business.ts";
import { hangUp } from "../support/call-faults.ts";
import { tenantWithNumbers } from "../support/calls.ts";
import { eventually } from "../support/carriers.ts";
import { api, errorOf, userWithToken } from "../support/identity.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";
import { captureLogs } from "../support/logs.ts";
import { customerWithBooks, erasureCodeMailedTo, mailTo } from "../support/privacy.ts";
import { forgetProviderHealth } from "../support/provider-health.ts";
import { spokenCall } from "../support/spoken-call.ts";
import { businessNumber, randomWaId } from "../support/whatsapp.ts";

/**
 * Privacy erasure through the real Worker: the admin asks, the code is read from the email miniflare's send_email
 * emulation wrote, and the confirmed sweep leaves nothing about the person in any D1 table (every table the
 * migrations made is searched, so a table added later is searched too), in R2 or in KV, while everyone else's data
 * and books stay whole.
 */
beforeEach(forgetProviderHealth);

type Shop = Awaited<ReturnType<typeof tenantWithNumbers>> & { whatsapp: string };
type Person = { waId: string; customerId: string; invoiceId: string };

let shop: Shop;
let elsewhere: Shop;

const ask = (token: string, body: unknown) => api("/api/v1/privacy/erasure", { method: "POST", token, body });
const confirm = (token: string, requestId: string, code: string) =>
  api(`/api/v1/privacy/erasure/${requestId}/confirm`, { method: "POST", token, body: { code } });
const otherThan = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, "0");

async function requested(owner: Shop, body: unknown): Promise<{ requestId: string; code: string }> {
  const before = (await mailTo(owner.admin.email)).length;
  const response = await ask(owner.token, body);
  const text = await response.text();
  expect(response.status, text).toBe(202);
  const { requestId, expiresAt } = JSON.parse(text) as { requestId: string; expiresAt: string };
  expect(Date.parse(expiresAt)).toBeGreaterThan(0);
  const { code, raw } = await erasureCodeMailedTo(owner.admin.email, before + 1);
  expect(raw).toMatch(/^From: Switchboard <privacy@switchboard\.test>\r?$/m);
  expect(raw).toContain(requestId);
  // The code is in the email only.
  expect(text).not.toContain(code);
  return { requestId, code };
}

async function person(owner: Shop, name: string): Promise<Person> {
  const waId = randomWaId();
  return { waId, ...(await customerWithBooks(owner.token, owner.whatsapp, name, waId, `Hello, this is ${name}`)) };
}

/** A shop that records its calls, so a call leaves its WAV in R2 and its row in `recordings`. */
async function openShop(): Promise<Shop> {
  const fixture = await tenantWithNumbers([{ carrier: "twilio", provider: "openai", instructions: "You are the shop." }]);
  const recording = await api("/api/v1/tenant/settings", { method: "PATCH", token: fixture.token, body: { recording: "on" } });
  expect(recording.status).toBe(200);
  return { ...fixture, whatsapp: await businessNumber(fixture.tenantId) };
}

/** A phone call from the person, hung up, with its analysis and its recording settled (its object has stopped writing). */
async function endedCall(owner: Shop, from: string, said: string) {
  const call = await spokenCall({ token: owner.token, number: owner.numbers[0]!, from: `+${from}`, said });
  await hangUp({ callSid: call.callSid, number: owner.numbers[0]! });
  await eventually(async () => {
    const row = await env.DB.prepare("SELECT status FROM session_analysis WHERE session_id = ?")
      .bind(call.sessionId)
      .first<{ status: string }>();
    return row?.status === "ready";
  }, 500);
  // The row is written once the last part has landed: the recording's objects are all in R2 by then.
  await eventually(async () => await env.DB.prepare("SELECT 1 FROM recordings WHERE session_id = ?").bind(call.sessionId).first(), 500);
  const parts = (await recordingsOf(owner.tenantId)).filter((key) =>
    key.startsWith(`recordings/${owner.tenantId}/${call.sessionId}/parts/`),
  );
  expect(parts.length).toBeGreaterThan(0);
  return call;
}

/**
 * The D1 tables (with their count of rows) where a row of the tenant holds `needle` in any column. Every table is
 * searched, FTS5 shadow tables aside (they are only read through their virtual table, which is searched).
 */
async function rowsHolding(needle: string, tenantId = shop.tenantId): Promise<string[]> {
  const { results: tables } = await env.DB.prepare(
    "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name != 'd1_migrations'",
  ).all<{ name: string; sql: string }>();
  const virtual = tables.filter((table) => /^CREATE VIRTUAL TABLE/i.test(table.sql)).map((table) => table.name);
  const shadows = new Set(virtual.flatMap((name) => ["data", "idx", "content", "docsize", "config"].map((suffix) => `${name}_${suffix}`)));
  expect(tables.map((table) => table.name)).toEqual(
    expect.arrayContaining(["customers", "calls", "sessions", "transcript_lines", "audit_log"]),
  );
  const found: string[] = [];
  for (const { name } of tables) {
    if (shadows.has(name)) continue;
    const { results: columns } = await env.DB.prepare(`PRAGMA table_info(${name})`).all<{ name: string }>();
    const anyColumn = columns.map((column) => `CAST("${column.name}" AS TEXT) LIKE ?1`).join(" OR ");
    const ofTenant = columns.some((column) => column.name === "tenant_id") ? "tenant_id = ?2" : name === "tenants" ? "id = ?2" : "1";
    const hit = await env.DB.prepare(`SELECT count(*) AS n FROM "${name}" WHERE (${anyColumn}) AND ${ofTenant}`)
      .bind(`%${needle}%`, tenantId)
      .first<{ n: number }>();
    if (hit!.n > 0) found.push(`${name} (${hit!.n})`);
  }
  return found;
}

/** KV keys whose name or value holds one of the needles; keys of the other tenant (its own Priya) are its own. */
async function kvHolding(needles: string[]): Promise<string[]> {
  const found: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.CACHE.list({ cursor });
    for (const key of page.keys) {
      if (key.name.includes(elsewhere.tenantId)) continue;
      const value = (await env.CACHE.get(key.name)) ?? "";
      if (needles.some((needle) => key.name.includes(needle) || value.includes(needle))) found.push(key.name);
    }
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return found;
}

/** Rows the session's own object holds, over all its SQLite tables and its key-value storage. */
const objectRows = (sessionId: string) =>
  runInDurableObject(callObject(env, sessionId), async (_instance, state) => {
    const tables = state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%'")
      .toArray();
    let rows = (await state.storage.list()).size;
    for (const { name } of tables) rows += state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${name}"`).one().n;
    return rows;
  });

const recordingsOf = async (tenantId: string) =>
  (await env.RECORDINGS.list({ prefix: `recordings/${tenantId}/` })).objects.map((object) => object.key).sort();

beforeAll(async () => {
  shop = await openShop();
  elsewhere = await openShop();
}, 60_000);

describe("privacy erasure", () => {
  it("wrong code four times, then the right one: everything about the person is gone, everyone else's is whole", async () => {
    const logs = captureLogs();
    const priya = await person(shop, "Priya");
    const rahul = await person(shop, "Rahul");
    // The same number is a customer of another tenant too: that tenant's data is not this erasure's.
    const priyaElsewhere = await customerWithBooks(elsewhere.token, elsewhere.whatsapp, "Priya elsewhere", priya.waId, "Hello other shop");
    const priyaCall = await endedCall(shop, priya.waId, "This is Priya about my invoice");
    const rahulCall = await endedCall(shop, rahul.waId, "This is Rahul");
    const rahulRecordings = (await recordingsOf(shop.tenantId)).filter((key) => key.includes(rahulCall.sessionId));
    expect(await rowsHolding(priyaCall.sessionId)).toEqual(expect.arrayContaining(["recordings (1)"]));
    // A payment made with an Idempotency-Key: its stored answer is her ledger entry (its id, her balance after it).
    const payment = await post<{ id: string }>(
      shop.token,
      "/api/v1/payments",
      { customerId: priya.customerId, amount: 500, mode: "cash" },
      201,
      {
        "Idempotency-Key": crypto.randomUUID(),
      },
    );
    // The business cache holds the customers (list and detail) and the call's carrier route is in KV: an inbound
    // call's object writes none (its id is derived), a lookup by its CallSid caches the one D1 has.
    await get(shop.token, "/api/v1/customers");
    await get(shop.token, `/api/v1/customers/${priya.customerId}`);
    expect(await sessionForCarrierCall(env, "twilio", priyaCall.callSid)).toMatchObject({ sessionId: priyaCall.sessionId });
    expect(await env.CACHE.get(`carrier-call:twilio:${priyaCall.callSid}`)).not.toBeNull();
    const needles = [priya.waId, priya.customerId, priya.invoiceId, payment.id, priyaCall.sessionId, priyaCall.call.id, priyaCall.callSid];
    expect(await rowsHolding(priya.customerId)).not.toEqual([]);

    const { requestId, code } = await requested(shop, { phone: `+${priya.waId}` });
    for (const triesLeft of [4, 3, 2, 1]) {
      const wrong = await confirm(shop.token, requestId, otherThan(code));
      expect(wrong.status).toBe(422);
      expect(await wrong.json()).toMatchObject({ error: { code: "erasure_code_invalid", details: { triesLeft } } });
    }
    const right = await confirm(shop.token, requestId, code);
    expect(right.status).toBe(200);
    expect(await right.json()).toEqual({ requestId, status: "done" });
    // Confirmed twice, swept once.
    expect((await confirm(shop.token, requestId, code)).status).toBe(409);

    for (const needle of needles) expect(await rowsHolding(needle), needle).toEqual([]);
    expect(await recordingsOf(shop.tenantId)).toEqual(rahulRecordings.sort());
    expect(await objectRows(priyaCall.sessionId)).toBe(0);
    expect(await objectRows(rahulCall.sessionId)).toBeGreaterThan(0);
    expect(await kvHolding(needles)).toEqual([]);
    expect((await env.CACHE.list({ prefix: `biz:${shop.tenantId}:` })).keys).toEqual([]);

    // Rahul's calls, books and messages, and the other tenant's Priya, are all still there.
    for (const needle of [rahul.customerId, rahul.invoiceId, rahulCall.sessionId, rahulCall.call.id, rahul.waId]) {
      expect(await rowsHolding(needle), needle).not.toEqual([]);
    }
    expect(await rowsHolding(priya.waId, elsewhere.tenantId)).toEqual(expect.arrayContaining(["customers (1)", "whatsapp_messages (2)"]));
    expect(await rowsHolding(priyaElsewhere.customerId, elsewhere.tenantId)).not.toEqual([]);
    const transcript = await env.DB.prepare("SELECT count(*) AS n FROM transcript_lines WHERE session_id = ?")
      .bind(rahulCall.sessionId)
      .first<{ n: number }>();
    expect(transcript!.n).toBeGreaterThan(0);
    await expectLedgerInvariant(shop.tenantId);
    await expectLedgerInvariant(elsewhere.tenantId);
    expect((await get<{ id: string }>(shop.token, `/api/v1/customers/${rahul.customerId}`)).id).toBe(rahul.customerId);
    await get(shop.token, `/api/v1/customers/${priya.customerId}`, 404);

    // The audit log keeps who asked, who confirmed and when, about a hash; never the number or the code.
    const audit = await get<{ items: Array<{ action: string; outcome: string; actorId: string | null; targetId: string | null }> }>(
      shop.token,
      "/api/v1/audit-log?limit=100",
    );
    const erasure = audit.items.filter((item) => item.action.startsWith("privacy.erasure"));
    expect(
      erasure
        .filter((item) => item.action === "privacy.erasure.confirm")
        .map((item) => item.outcome)
        .sort(),
    ).toEqual(["failure", "failure", "failure", "failure", "failure", "success"]);
    const [complete, ...more] = erasure.filter((item) => item.action === "privacy.erasure.complete");
    expect(more).toEqual([]);
    expect(complete).toMatchObject({ actorId: shop.admin.id, targetId: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(erasure.find((item) => item.action === "privacy.erasure.request")!.targetId).toBe(complete!.targetId);
    expect(JSON.stringify(audit.items)).not.toContain(priya.waId);
    expect(JSON.stringify(logs.all())).not.toContain(code);
  }, 120_000);

  it("five wrong codes kill the request: the right code is refused afterwards and nothing is deleted", async () => {
    const meera = await person(shop, "Meera");
    const { requestId, code } = await requested(shop, { customerId: meera.customerId });
    for (const triesLeft of [4, 3, 2, 1, 0]) {
      const wrong = await confirm(shop.token, requestId, otherThan(code));
      expect(wrong.status).toBe(422);
      expect(await wrong.json()).toMatchObject({ error: { details: { triesLeft } } });
    }
    const late = await confirm(shop.token, requestId, code);
    expect(late.status).toBe(410);
    expect((await errorOf(late)).code).toBe("erasure_request_dead");
    expect((await get<{ id: string }>(shop.token, `/api/v1/customers/${meera.customerId}`)).id).toBe(meera.customerId);
  });

  it("wrong codes sent at once are each counted before they are compared: five answered, the rest refused", async () => {
    const ravi = await person(shop, "Ravi");
    const { requestId, code } = await requested(shop, { customerId: ravi.customerId });
    const answers = await Promise.all(Array.from({ length: 8 }, () => confirm(shop.token, requestId, otherThan(code))));
    expect(answers.map((answer) => answer.status).sort()).toEqual([410, 410, 410, 422, 422, 422, 422, 422]);
    expect((await confirm(shop.token, requestId, code)).status).toBe(410);
    const row = await env.DB.prepare("SELECT attempts, status FROM erasure_requests WHERE id = ?").bind(requestId).first();
    expect(row).toEqual({ attempts: 5, status: "dead" });
  });

  it("an expired request is dead, even with the right code", async () => {
    const anil = await person(shop, "Anil");
    const { requestId, code } = await requested(shop, { customerId: anil.customerId });
    // Ten minutes later: the request's expiry moved into the past.
    await env.DB.prepare("UPDATE erasure_requests SET expires_at = ? WHERE tenant_id = ? AND id = ?")
      .bind(Date.now() - 1, shop.tenantId, requestId)
      .run();
    const response = await confirm(shop.token, requestId, code);
    expect(response.status).toBe(410);
    expect((await get<{ id: string }>(shop.token, `/api/v1/customers/${anil.customerId}`)).id).toBe(anil.customerId);
  });

  it("admins only; another tenant's request is not found; an unknown customer is 404", async () => {
    const devi = await person(shop, "Devi");
    const supervisor = (await userWithToken(shop.tenantId, "supervisor")).accessToken;
    expect((await ask(supervisor, { customerId: devi.customerId })).status).toBe(403);
    expect((await ask(shop.token, { customerId: crypto.randomUUID() })).status).toBe(404);
    expect((await ask(shop.token, {})).status).toBe(400);
    const { requestId, code } = await requested(shop, { customerId: devi.customerId });
    expect((await confirm(supervisor, requestId, code)).status).toBe(403);
    const foreign = await confirm(elsewhere.token, requestId, code);
    expect(foreign.status).toBe(404);
    // Neither refusal spent a try.
    expect((await confirm(shop.token, requestId, code)).status).toBe(200);
    await get(shop.token, `/api/v1/customers/${devi.customerId}`, 404);
  });

  it("waits for a call still in progress: the cron finishes once it has ended and settled", async () => {
    const lata = await person(shop, "Lata");
    const call = await spokenCall({ token: shop.token, number: shop.numbers[0]!, from: `+${lata.waId}`, said: "This is Lata" });
    const { requestId, code } = await requested(shop, { phone: `+${lata.waId}` });
    const confirmed = await confirm(shop.token, requestId, code);
    expect(await confirmed.json()).toEqual({ requestId, status: "sweeping" });
    // The live call's object is still writing: the sweep waits at its first step (her calls), every row in place.
    const waiting = await env.DB.prepare("SELECT step, status FROM erasure_requests WHERE id = ?").bind(requestId).first();
    expect(waiting).toEqual({ step: 0, status: "sweeping" });
    expect(await rowsHolding(call.sessionId)).toEqual(expect.arrayContaining(["sessions (1)", "calls (1)"]));
    expect(await resumeErasures(env, createLogger({ correlationId: "erasure-test" }))).toMatchObject({ sweeping: 1 });

    await hangUp({ callSid: call.callSid, number: shop.numbers[0]! });
    const log = createLogger({ correlationId: "erasure-test" });
    // Once the call has ended and its analysis is settled, a run of the cron completes the sweep.
    await eventually(async () => {
      await resumeErasures(env, log);
      const row = await env.DB.prepare("SELECT status FROM erasure_requests WHERE id = ?").bind(requestId).first<{ status: string }>();
      return row?.status === "done";
    }, 500);
    for (const needle of [call.sessionId, call.callSid, lata.waId, lata.customerId]) expect(await rowsHolding(needle), needle).toEqual([]);
    expect(await objectRows(call.sessionId)).toBe(0);
  }, 60_000);

  it("a sweep cut off after a step is finished by the cron, from where it stopped", async () => {
    const kiran = await person(shop, "Kiran");
    const { requestId } = await requested(shop, { phone: `+${kiran.waId}` });
    // The confirmation claimed the request and its Worker died: two D1 batches were all it did.
    await env.DB.prepare("UPDATE erasure_requests SET status = 'sweeping' WHERE tenant_id = ? AND id = ?")
      .bind(shop.tenantId, requestId)
      .run();
    expect(await runSweep(env, shop.tenantId, requestId, 2)).toBe("sweeping");
    const cut = await env.DB.prepare("SELECT step, status FROM erasure_requests WHERE id = ?")
      .bind(requestId)
      .first<{ step: number; status: string }>();
    // Calls (none), stored answers and the customer's books are done; her messages, the cache and the end are not.
    expect(cut).toEqual({ step: 3, status: "sweeping" });
    // Only the request itself still names her (its targets, until the sweep is done).
    expect(await rowsHolding(kiran.customerId)).toEqual(["erasure_requests (1)"]);

    const log = createLogger({ correlationId: "erasure-test" });
    expect((await resumeErasures(env, log)).done).toBeGreaterThanOrEqual(1);
    const finished = await env.DB.prepare("SELECT status, targets FROM erasure_requests WHERE id = ?").bind(requestId).first();
    expect(finished).toEqual({ status: "done", targets: null });
    for (const needle of [kiran.waId, kiran.customerId, kiran.invoiceId]) expect(await rowsHolding(needle), needle).toEqual([]);
    expect(await resumeErasures(env, log)).toEqual({});
    const completions = await env.DB.prepare(
      "SELECT count(*) AS n FROM audit_log WHERE tenant_id = ? AND action = 'privacy.erasure.complete' AND details LIKE ?",
    )
      .bind(shop.tenantId, `%${requestId}%`)
      .first<{ n: number }>();
    expect(completions!.n).toBe(1);
  });
});
