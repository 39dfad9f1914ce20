import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { booksOf, expectRefusedUnchanged, get, openShop, post } from "../support/business.ts";
import { api } from "../support/identity.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";

/** `POST /api/v1/payments`: a credit and the balance together; exact under concurrency; idempotent with a key. */
async function indebted() {
  const shop = await openShop();
  const customer = await post<{ id: string }>(shop.agent, "/api/v1/customers", { name: "Vikram Singh" });
  const inv = await post<{ id: string }>(shop.agent, "/api/v1/invoices", {
    customerId: customer.id,
    items: [{ productName: "Cement bags", quantity: 10, unitPrice: 40_000 }],
  });
  return { ...shop, customerId: customer.id, invoiceId: inv.id };
}

const pay = (token: string, body: unknown, headers?: Record<string, string>) => () =>
  api("/api/v1/payments", { method: "POST", token, body, headers });

describe("payments API", () => {
  it("records a payment against the customer (and optionally an invoice) with the balance after it", async () => {
    const shop = await indebted();
    const entry = await post(shop.agent, "/api/v1/payments", {
      customerId: shop.customerId,
      amount: 150_000,
      mode: "upi",
      invoiceId: shop.invoiceId,
      reference: "UTR123",
    });
    expect(entry).toMatchObject({
      kind: "payment",
      direction: "credit",
      amount: 150_000,
      balanceAfter: 250_000,
      mode: "upi",
      invoiceId: shop.invoiceId,
    });
    expect((await get<{ balance: number }>(shop.agent, `/api/v1/customers/${shop.customerId}`)).balance).toBe(250_000);
    await expectLedgerInvariant(shop.tenantId);
  });

  it("refuses bad amounts, modes, currencies, invoices and customers, writing nothing", async () => {
    const shop = await indebted();
    const other = await indebted();
    const voidable = await post<{ id: string }>(shop.agent, "/api/v1/invoices", {
      customerId: shop.customerId,
      items: [{ productName: "Sand", quantity: 1, unitPrice: 100 }],
    });
    await post(shop.agent, `/api/v1/invoices/${voidable.id}/void`, {}, 200);
    const base = { customerId: shop.customerId, amount: 1_000, mode: "cash" };
    const cases: Array<[unknown, number, string]> = [
      [{ ...base, amount: 0 }, 422, "invalid_amount"],
      [{ ...base, amount: -1_000 }, 422, "invalid_amount"],
      [{ ...base, amount: 10.5 }, 400, "validation_failed"],
      [{ ...base, amount: "1000" }, 400, "validation_failed"],
      [{ ...base, amount: 100_000_000_01 }, 422, "invalid_amount"],
      [{ ...base, mode: "cheque" }, 400, "validation_failed"],
      [{ ...base, currency: "EUR" }, 422, "currency_mismatch"],
      [{ ...base, customerId: crypto.randomUUID() }, 404, "customer_not_found"],
      [{ ...base, customerId: other.customerId }, 404, "customer_not_found"],
      [{ ...base, invoiceId: other.invoiceId }, 404, "invoice_not_found"],
      [{ ...base, invoiceId: voidable.id }, 409, "invoice_void"],
    ];
    for (const [body, status, code] of cases) await expectRefusedUnchanged(shop.tenantId, pay(shop.agent, body), status, code);
    const second = await post<{ id: string }>(shop.agent, "/api/v1/customers", { name: "Someone Else" });
    await expectRefusedUnchanged(
      shop.tenantId,
      pay(shop.agent, { ...base, customerId: second.id, invoiceId: shop.invoiceId }),
      422,
      "invoice_customer_mismatch",
    );
  });

  it("fifty concurrent payments to one customer leave the exact balance and a consistent running ledger", async () => {
    const shop = await indebted();
    const amounts = Array.from({ length: 50 }, (_, i) => 1_000 + i * 7);
    const responses = await Promise.all(amounts.map((amount) => pay(shop.agent, { customerId: shop.customerId, amount, mode: "cash" })()));
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(201));
    const paid = amounts.reduce((a, b) => a + b, 0);
    expect((await get<{ balance: number }>(shop.agent, `/api/v1/customers/${shop.customerId}`)).balance).toBe(400_000 - paid);
    const ledger = await get<{ items: Array<{ balanceAfter: number }> }>(
      shop.agent,
      `/api/v1/customers/${shop.customerId}/ledger?limit=100`,
    );
    expect(ledger.items).toHaveLength(51);
    expect(new Set(ledger.items.map((e) => e.balanceAfter)).size).toBe(51);
    await expectLedgerInvariant(shop.tenantId);
  });

  it("Idempotency-Key: a retried payment is recorded once; the key with another amount is 422", async () => {
    const shop = await indebted();
    const key = { "Idempotency-Key": `pay-${crypto.randomUUID()}` };
    const body = { customerId: shop.customerId, amount: 5_000, mode: "card" };
    const first = await post(shop.agent, "/api/v1/payments", body, 201, key);
    expect(await post(shop.agent, "/api/v1/payments", body, 201, key)).toEqual(first);
    await expectRefusedUnchanged(shop.tenantId, pay(shop.agent, { ...body, amount: 5_001 }, key), 422, "idempotency_key_reused");
    await expectRefusedUnchanged(shop.tenantId, pay(shop.agent, body, { "Idempotency-Key": "has spaces" }), 400, "invalid_idempotency_key");
    // Keys are per route: the same key on an invoice is a different request, not a reuse.
    await post(
      shop.agent,
      "/api/v1/invoices",
      { customerId: shop.customerId, items: [{ productName: "Bag", quantity: 1, unitPrice: 100 }] },
      201,
      key,
    );
    expect((await booksOf(shop.tenantId)).entries).toBe(3);
    expect((await get<{ balance: number }>(shop.agent, `/api/v1/customers/${shop.customerId}`)).balance).toBe(395_100);
    await expectLedgerInvariant(shop.tenantId);
  });

  it("Idempotency-Key: a retry after a Worker died between the payment and its answer gets that payment, not a second", async () => {
    const shop = await indebted();
    const key = { "Idempotency-Key": `pay-${crypto.randomUUID()}` };
    const body = { customerId: shop.customerId, amount: 12_000, mode: "bank" };
    const first = await post(shop.agent, "/api/v1/payments", body, 201, key);
    // The state such a Worker leaves: the payment and its key's mark committed together, no answer stored.
    await env.DB.prepare("UPDATE idempotency_keys SET response_status = NULL, response_body = NULL WHERE tenant_id = ? AND key = ?")
      .bind(shop.tenantId, key["Idempotency-Key"])
      .run();

    expect(await post(shop.agent, "/api/v1/payments", body, 201, key)).toEqual(first);
    expect(await post(shop.agent, "/api/v1/payments", body, 201, key)).toEqual(first);
    expect((await booksOf(shop.tenantId)).entries).toBe(2);
    expect((await get<{ balance: number }>(shop.agent, `/api/v1/customers/${shop.customerId}`)).balance).toBe(388_000);
    await expectLedgerInvariant(shop.tenantId);
  });
});
