import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BusinessEngine } from "../../../workers/business/engine.ts";
import type { BusinessError } from "../../../workers/business/errors.ts";
import { runOnce } from "../../../workers/business/idempotency.ts";
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
});
