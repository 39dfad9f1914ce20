import { describe, expect, it } from "vitest";
import { get, openShop, post } from "../support/business.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";

/**
 * The business engine with KV unreachable (the worker-kv-down project): KV is only the cache's second tier, so every
 * read falls through to D1, every write's invalidation fails quietly, and a writer still reads its own writes.
 */
describe("the books while KV is down", () => {
  it("customers, invoices, payments and their reads all work, and stay exact", async () => {
    const shop = await openShop();
    const customer = await post<{ id: string }>(shop.agent, "/api/v1/customers", { name: "Kiran Rao" });
    expect((await get<{ balance: number }>(shop.agent, `/api/v1/customers/${customer.id}`)).balance).toBe(0);
    await post(shop.agent, "/api/v1/invoices", {
      customerId: customer.id,
      items: [{ productName: "Oil", quantity: 1, unitPrice: 18_000 }],
    });
    await post(shop.agent, "/api/v1/payments", { customerId: customer.id, amount: 8_000, mode: "upi" });
    expect((await get<{ balance: number }>(shop.agent, `/api/v1/customers/${customer.id}`)).balance).toBe(10_000);
    expect((await get<{ items: unknown[] }>(shop.agent, `/api/v1/invoices?customerId=${customer.id}`)).items).toHaveLength(1);
    const listed = await get<{ items: Array<{ id: string; balance: number }> }>(shop.agent, "/api/v1/customers");
    expect(listed.items.find((c) => c.id === customer.id)?.balance).toBe(10_000);
    await expectLedgerInvariant(shop.tenantId);
  });
});
