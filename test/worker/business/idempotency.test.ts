import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BusinessEngine } from "../../../workers/business/engine.ts";
import type { BusinessError } from "../../../workers/business/errors.ts";
import { IDEMPOTENCY_RETENTION_MS, runOnce } from "../../../workers/business/idempotency.ts";
import worker from "../../../workers/index.ts";
import { createTenant } from "../support/identity.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";

/** `runOnce` as the voice tools use it (keyed by the provider's call id): one write per key, however many race. */
describe("idempotency", () => {
  it("concurrent runs with one key write once; the rest replay the answer or are told it is in progress", async () => {
    const tenantId = await createTenant();
    const engine = new BusinessEngine(env.DB, tenantId, { source: "voice" }, env.CACHE);
    const customer = await engine.createCustomer({ name: "Once Only" });
    const body = { customerId: customer.id, amount: 2_500, mode: "cash" as const };
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        runOnce(env.DB, tenantId, "tool:record_payment", "call-1:item-7", body, async () => ({
          status: 201,
          body: await new BusinessEngine(env.DB, tenantId, { source: "voice" }, env.CACHE).recordPayment(body),
        })),
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

  it("keys are per tenant: another tenant's identical key is its own", async () => {
    const answers = [];
    for (const tenantId of [await createTenant(), await createTenant()])
      answers.push(await runOnce(env.DB, tenantId, "s", "same-key", { a: 1 }, async () => ({ status: 200, body: { tenantId } })));
    expect(answers.map((a) => a.replayed)).toEqual([false, false]);
  });

  it("the cron purges keys past their retention, a backlog in batches; younger keys stay and still replay", async () => {
    const tenantId = await createTenant();
    const write = (key: string) => runOnce(env.DB, tenantId, "s", key, { a: 1 }, async () => ({ status: 201, body: { key } }));
    await write("old");
    await write("young");
    const expiredAt = Date.now() - IDEMPOTENCY_RETENTION_MS - 60_000;
    await env.DB.prepare("UPDATE idempotency_keys SET created_at = ? WHERE tenant_id = ? AND key = 'old'").bind(expiredAt, tenantId).run();
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
    expect((await write("young")).replayed).toBe(true);
    expect((await write("old")).replayed).toBe(false);
  });
});
