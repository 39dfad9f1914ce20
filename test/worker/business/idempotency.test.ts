import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BusinessEngine, type LedgerEntry, type PaymentInput } from "../../../workers/business/engine.ts";
import type { BusinessError } from "../../../workers/business/errors.ts";
import { CLAIM_LEASE_MS, IDEMPOTENCY_RETENTION_MS, type OnceWrite, runOnce } from "../../../workers/business/idempotency.ts";
import worker from "../../../workers/index.ts";
import { tenantScopeOn } from "../../../workers/shared/db/tenant-scope.ts";
import { createTenant } from "../support/identity.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";

/** A payment as the routes and the voice tools write one under a key. */
const paymentWrite = (tenantId: string, body: PaymentInput): OnceWrite<LedgerEntry> => {
  const engine = new BusinessEngine(env.DB, tenantId, { source: "voice" }, env.CACHE);
  return {
    write: async (mark) => ({ status: 201, body: await engine.recordPayment(body, mark) }),
    answer: async (entryId) => ({ status: 201, body: await engine.writtenPayment(entryId) }),
  };
};

/** A write of nothing but its mark (`ref` "done"), answering `body`. */
const markOnly = <T>(tenantId: string, body: T): OnceWrite<T> => ({
  write: async (mark) => {
    await tenantScopeOn(env.DB, tenantId).batch([mark("done")]);
    return { status: 201, body };
  },
  answer: async () => ({ status: 201, body }),
});

/** `runOnce` as the voice tools use it (keyed by the provider's call id): one write per key, however many race. */
describe("idempotency", () => {
  it("concurrent runs with one key write once; the rest replay the answer or are told it is in progress", async () => {
    const tenantId = await createTenant();
    const engine = new BusinessEngine(env.DB, tenantId, { source: "voice" }, env.CACHE);
    const customer = await engine.createCustomer({ name: "Once Only" });
    const body = { customerId: customer.id, amount: 2_500, mode: "cash" as const };
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        runOnce(env.DB, tenantId, "tool:record_payment", "call-1:item-7", body, paymentWrite(tenantId, body)),
      ),
    );
    for (const outcome of outcomes)
      if (outcome.status === "rejected") expect((outcome.reason as BusinessError).code).toBe("idempotency_in_progress");
    const ids = new Set(outcomes.flatMap((o) => (o.status === "fulfilled" ? [o.value.body.id] : [])));
    expect(ids.size).toBe(1);
    expect(await engine.balance(customer.id)).toBe(-2_500);
    expect((await engine.ledger(customer.id)).items).toHaveLength(1);
    await expectLedgerInvariant(tenantId);
  });

  it("a write that committed but was never answered for (its Worker died in between) is answered from it, not written again", async () => {
    const tenantId = await createTenant();
    const engine = new BusinessEngine(env.DB, tenantId, { source: "api" }, env.CACHE);
    const customer = await engine.createCustomer({ name: "Died Mid Write" });
    const body = { customerId: customer.id, amount: 4_000, mode: "upi" as const };
    const first = await runOnce(env.DB, tenantId, "payments", "k-died", body, paymentWrite(tenantId, body));
    // What a Worker that died after the write's batch and before storing its answer leaves behind.
    await unanswered(tenantId, "k-died");

    const retry = await runOnce(env.DB, tenantId, "payments", "k-died", body, paymentWrite(tenantId, body));
    expect(retry).toEqual({ ...first, replayed: true });
    expect(await storedStatus(tenantId, "k-died")).toBe(201);
    expect(await engine.balance(customer.id)).toBe(-4_000);
    expect((await engine.ledger(customer.id)).items).toHaveLength(1);
    await expectLedgerInvariant(tenantId);
  });

  it("a write that fails after its batch committed (a cache drop) keeps its key and is answered from its mark", async () => {
    const tenantId = await createTenant();
    let answers = 0;
    const failsAfterCommit: OnceWrite<{ ref: string }> = {
      write: async (mark) => {
        await tenantScopeOn(env.DB, tenantId).batch([mark("thing-1")]);
        throw new Error("the cache could not be dropped");
      },
      answer: async (ref) => ({ status: 201, body: { ref: `${ref} (answer ${++answers})` } }),
    };
    const first = await runOnce(env.DB, tenantId, "s", "k-after", { a: 1 }, failsAfterCommit);
    expect(first).toEqual({ status: 201, body: { ref: "thing-1 (answer 1)" }, replayed: true });
    expect(await runOnce(env.DB, tenantId, "s", "k-after", { a: 1 }, failsAfterCommit)).toEqual(first);
    expect(answers).toBe(1);
  });

  it("a claimant that died before writing: its claim waits out its lease, then one of the racing retries writes", async () => {
    const tenantId = await createTenant();
    const engine = new BusinessEngine(env.DB, tenantId, { source: "api" }, env.CACHE);
    const customer = await engine.createCustomer({ name: "Died Before Write" });
    const body = { customerId: customer.id, amount: 7_000, mode: "cash" as const };
    const retry = () => runOnce(env.DB, tenantId, "payments", "k-dead", body, paymentWrite(tenantId, body));
    // The dead claimant's claim, as its insert left it: the same body's hash, read from a claim of that body under another key.
    await runOnce(env.DB, tenantId, "payments", "k-template", body, markOnly(tenantId, null));
    const hash = await requestHashOf(tenantId, "k-template");
    await claimLeftBy(tenantId, "k-dead", hash, Date.now());
    await expect(retry()).rejects.toMatchObject({ code: "idempotency_in_progress" });

    await claimLeftBy(tenantId, "k-dead", hash, Date.now() - CLAIM_LEASE_MS - 1_000);
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, retry));
    const answered = outcomes.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
    for (const outcome of outcomes)
      if (outcome.status === "rejected") expect((outcome.reason as BusinessError).code).toBe("idempotency_in_progress");
    expect(answered.filter((a) => !a.replayed)).toHaveLength(1);
    expect(new Set(answered.map((a) => a.body.id)).size).toBe(1);
    expect((await engine.ledger(customer.id)).items).toHaveLength(1);
    expect(await engine.balance(customer.id)).toBe(-7_000);
    await expectLedgerInvariant(tenantId);
  });

  it("a claimant taken for dead that was only slow: its write is refused and it answers the write that took over", async () => {
    const tenantId = await createTenant();
    const engine = new BusinessEngine(env.DB, tenantId, { source: "api" }, env.CACHE);
    const customer = await engine.createCustomer({ name: "Slow Not Dead" });
    const body = { customerId: customer.id, amount: 1_500, mode: "card" as const };
    let resume = () => {};
    const resumed = new Promise<void>((resolve) => {
      resume = resolve;
    });
    let claimed = () => {};
    const writing = new Promise<void>((resolve) => {
      claimed = resolve;
    });
    const slow = paymentWrite(tenantId, body);
    const slowRun = runOnce(env.DB, tenantId, "payments", "k-slow", body, {
      ...slow,
      write: async (mark) => {
        claimed();
        await resumed;
        return slow.write(mark);
      },
    });
    await writing;
    await env.DB.prepare("UPDATE idempotency_keys SET created_at = ? WHERE tenant_id = ? AND key = 'k-slow'")
      .bind(Date.now() - CLAIM_LEASE_MS - 1_000, tenantId)
      .run();
    const takeover = await runOnce(env.DB, tenantId, "payments", "k-slow", body, paymentWrite(tenantId, body));
    expect(takeover.replayed).toBe(false);
    resume();

    expect(await slowRun).toEqual({ ...takeover, replayed: true });
    expect((await engine.ledger(customer.id)).items).toHaveLength(1);
    expect(await engine.balance(customer.id)).toBe(-1_500);
    await expectLedgerInvariant(tenantId);
  });

  it("keys are per tenant: another tenant's identical key is its own", async () => {
    const answers = [];
    for (const tenantId of [await createTenant(), await createTenant()])
      answers.push(await runOnce(env.DB, tenantId, "s", "same-key", { a: 1 }, markOnly(tenantId, { tenantId })));
    expect(answers.map((a) => a.replayed)).toEqual([false, false]);
  });

  it("the cron purges keys past their retention, a backlog in batches; younger keys stay and still replay", async () => {
    const tenantId = await createTenant();
    const write = (key: string) => runOnce(env.DB, tenantId, "s", key, { a: 1 }, markOnly(tenantId, { key }));
    await write("old");
    await write("young");
    const expiredAt = Date.now() - IDEMPOTENCY_RETENTION_MS - 60_000;
    for (const table of ["idempotency_keys", "idempotency_writes"])
      await env.DB.prepare(`UPDATE ${table} SET created_at = ? WHERE tenant_id = ? AND key = 'old'`).bind(expiredAt, tenantId).run();
    // Another tenant's backlog of expired keys, more than one statement deletes.
    const backlog = await createTenant();
    await env.DB.batch(
      Array.from({ length: 1_234 }, (_, i) =>
        env.DB.prepare("INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, created_at) VALUES (?, 's', ?, 'h', ?)").bind(
          backlog,
          `k${i}`,
          expiredAt - i,
        ),
      ),
    );

    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "*/5 * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);

    const left = await env.DB.prepare("SELECT tenant_id, key FROM idempotency_keys WHERE tenant_id IN (?, ?) ORDER BY key")
      .bind(tenantId, backlog)
      .all<{ tenant_id: string; key: string }>();
    expect(left.results).toEqual([{ tenant_id: tenantId, key: "young" }]);
    const marks = await env.DB.prepare("SELECT key FROM idempotency_writes WHERE tenant_id = ?").bind(tenantId).all<{ key: string }>();
    expect(marks.results).toEqual([{ key: "young" }]);
    expect((await write("young")).replayed).toBe(true);
    expect((await write("old")).replayed).toBe(false);
  });
});

async function unanswered(tenantId: string, key: string): Promise<void> {
  await env.DB.prepare("UPDATE idempotency_keys SET response_status = NULL, response_body = NULL WHERE tenant_id = ? AND key = ?")
    .bind(tenantId, key)
    .run();
}

async function storedStatus(tenantId: string, key: string): Promise<number | null> {
  return env.DB.prepare("SELECT response_status FROM idempotency_keys WHERE tenant_id = ? AND key = ?")
    .bind(tenantId, key)
    .first("response_status");
}

async function requestHashOf(tenantId: string, key: string): Promise<string> {
  const hash = await env.DB.prepare("SELECT request_hash FROM idempotency_keys WHERE tenant_id = ? AND key = ?")
    .bind(tenantId, key)
    .first<string>("request_hash");
  if (hash === null) throw new Error("no template claim");
  return hash;
}

/** A claim with no answer and no write, as a claimant that died between its claim and its write leaves it. */
async function claimLeftBy(tenantId: string, key: string, requestHash: string, createdAt: number): Promise<void> {
  await env.DB.prepare(
    "INSERT OR REPLACE INTO idempotency_keys (tenant_id, scope, key, request_hash, created_at) VALUES (?, 'payments', ?, ?, ?)",
  )
    .bind(tenantId, key, requestHash, createdAt)
    .run();
}
