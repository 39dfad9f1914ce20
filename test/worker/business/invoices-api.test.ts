import { describe, expect, it } from "vitest";
import { booksOf, expectRefusedUnchanged, get, openShop, post } from "../support/business.ts";
import { api } from "../support/identity.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";

/**
 * `/api/v1/invoices`: invoice, items, ledger debit and balance written together; every bad input a clear 4xx with
 * nothing written; a void reverses exactly once however many race; `Idempotency-Key` writes an invoice once.
 */
interface Invoice {
  id: string;
  status: string;
  total: number;
  items: Array<{ productId: string | null; description: string; quantity: number; unitPrice: number; amount: number }>;
}

async function stockedShop() {
  const shop = await openShop();
  const customer = await post<{ id: string }>(shop.agent, "/api/v1/customers", { name: "Farah Khan" });
  const sugar = await post<{ id: string }>(shop.admin, "/api/v1/products", { name: "Sugar", unitPrice: 4_500, unit: "kg" });
  await post(shop.admin, "/api/v1/products", { name: "Green Tea", unitPrice: 25_000 });
  await post(shop.admin, "/api/v1/products", { name: "Black Tea", unitPrice: 20_000 });
  await post(shop.admin, "/api/v1/products", { name: "Salt", unitPrice: 2_000 });
  await post(shop.admin, "/api/v1/products", { name: "salt", unitPrice: 2_200 });
  return { ...shop, customerId: customer.id, sugarId: sugar.id };
}

const invoice = (token: string, body: unknown, headers?: Record<string, string>) => () =>
  api("/api/v1/invoices", { method: "POST", token, body, headers });

describe("invoices API", () => {
  it("prices items by product id, by name (any case) and free text; debits the customer in the same write", async () => {
    const shop = await stockedShop();
    const created = await post<Invoice>(shop.agent, "/api/v1/invoices", {
      customerId: shop.customerId,
      items: [
        { productId: shop.sugarId, quantity: 1.5 },
        { productName: "GREEN TEA", quantity: 2, unitPrice: 24_000 },
        { productName: "Delivery", quantity: 1, unitPrice: 5_000 },
      ],
      currency: "INR",
    });
    expect(created.status).toBe("open");
    expect(created.items.map((i) => [i.description, i.quantity, i.unitPrice, i.amount])).toEqual([
      ["Sugar", 1.5, 4_500, 6_750],
      ["Green Tea", 2, 24_000, 48_000],
      ["Delivery", 1, 5_000, 5_000],
    ]);
    expect(created.total).toBe(59_750);
    expect(await get<Invoice>(shop.agent, `/api/v1/invoices/${created.id}`)).toEqual(created);
    expect((await get<{ balance: number }>(shop.agent, `/api/v1/customers/${shop.customerId}`)).balance).toBe(59_750);
    const list = await get<{ items: Invoice[] }>(shop.agent, `/api/v1/invoices?customerId=${shop.customerId}`);
    expect(list.items.map((i) => i.id)).toEqual([created.id]);
    await expectLedgerInvariant(shop.tenantId);
  });

  it("refuses every bad input with a clear 4xx and writes nothing", async () => {
    const shop = await stockedShop();
    const item = { productId: shop.sugarId, quantity: 1 };
    const cases: Array<[unknown, number, string]> = [
      [{ customerId: crypto.randomUUID(), items: [item] }, 404, "customer_not_found"],
      [{ customerId: shop.customerId, items: [{ productId: crypto.randomUUID(), quantity: 1 }] }, 422, "unknown_product"],
      [{ customerId: shop.customerId, items: [{ productName: "Tea", quantity: 1 }] }, 422, "unknown_product"],
      [{ customerId: shop.customerId, items: [{ productName: "salt", quantity: 1 }] }, 422, "ambiguous_product"],
      [{ customerId: shop.customerId, items: [{ quantity: 1, unitPrice: 100 }] }, 422, "unknown_product"],
      [{ customerId: shop.customerId, items: [{ ...item, quantity: 0 }] }, 422, "invalid_quantity"],
      [{ customerId: shop.customerId, items: [{ ...item, quantity: -2 }] }, 422, "invalid_quantity"],
      [{ customerId: shop.customerId, items: [{ ...item, quantity: 1e9 }] }, 422, "invalid_quantity"],
      [{ customerId: shop.customerId, items: [{ ...item, quantity: 0.0001 }] }, 422, "invalid_quantity"],
      [{ customerId: shop.customerId, items: [{ ...item, unitPrice: 0 }] }, 422, "invalid_amount"],
      [{ customerId: shop.customerId, items: [{ ...item, unitPrice: -100 }] }, 422, "invalid_amount"],
      [{ customerId: shop.customerId, items: [{ ...item, unitPrice: 99.5 }] }, 400, "validation_failed"],
      // Each line within the cap, the total far beyond it.
      [{ customerId: shop.customerId, items: [{ ...item, quantity: 1_000_000, unitPrice: 9_000_000_000 }] }, 422, "invalid_amount"],
      [{ customerId: shop.customerId, items: [item], currency: "USD" }, 422, "currency_mismatch"],
      [{ customerId: shop.customerId, items: [] }, 400, "validation_failed"],
      [{ customerId: shop.customerId, items: [item], total: 1 }, 400, "validation_failed"],
    ];
    for (const [body, status, code] of cases) await expectRefusedUnchanged(shop.tenantId, invoice(shop.agent, body), status, code);

    const unknown = await expectRefusedUnchanged(shop.tenantId, invoice(shop.agent, cases[2]![0]), 422, "unknown_product");
    expect((unknown.details?.candidates as Array<{ name: string }>).map((c) => c.name)).toEqual(["Black Tea", "Green Tea"]);
    const ambiguous = await expectRefusedUnchanged(shop.tenantId, invoice(shop.agent, cases[3]![0]), 422, "ambiguous_product");
    expect(ambiguous.details?.candidates).toHaveLength(2);
  });

  it("another tenant's customer, product or invoice is not found; nothing is written in either tenant", async () => {
    const shop = await stockedShop();
    const other = await stockedShop();
    const mine = await post<Invoice>(shop.agent, "/api/v1/invoices", {
      customerId: shop.customerId,
      items: [{ productId: shop.sugarId, quantity: 1 }],
    });
    await expectRefusedUnchanged(
      other.tenantId,
      invoice(other.agent, { customerId: shop.customerId, items: [{ productId: other.sugarId, quantity: 1 }] }),
      404,
      "customer_not_found",
    );
    await expectRefusedUnchanged(
      other.tenantId,
      invoice(other.agent, { customerId: other.customerId, items: [{ productId: shop.sugarId, quantity: 1 }] }),
      422,
      "unknown_product",
    );
    expect((await api(`/api/v1/invoices/${mine.id}`, { token: other.agent })).status).toBe(404);
    const before = await booksOf(shop.tenantId);
    const voided = await api(`/api/v1/invoices/${mine.id}/void`, { method: "POST", token: other.agent, body: {} });
    expect(voided.status).toBe(404);
    expect(await booksOf(shop.tenantId)).toEqual(before);
    expect((await get<{ items: Invoice[] }>(other.agent, "/api/v1/invoices")).items).toEqual([]);
  });

  it("a void credits the customer back once, is audited, and a second void is 409 with nothing written", async () => {
    const shop = await stockedShop();
    const created = await post<Invoice>(shop.agent, "/api/v1/invoices", {
      customerId: shop.customerId,
      items: [{ productId: shop.sugarId, quantity: 2 }],
    });
    const voided = await post<Invoice & { voidReason: string }>(
      shop.agent,
      `/api/v1/invoices/${created.id}/void`,
      { reason: "returned" },
      200,
    );
    expect(voided).toMatchObject({ status: "void", voidReason: "returned" });
    expect((await get<{ balance: number }>(shop.agent, `/api/v1/customers/${shop.customerId}`)).balance).toBe(0);
    const again = () => api(`/api/v1/invoices/${created.id}/void`, { method: "POST", token: shop.agent, body: {} });
    await expectRefusedUnchanged(shop.tenantId, again, 409, "invoice_already_void");
    const audit = await get<{ items: Array<{ action: string; targetId: string }> }>(shop.admin, "/api/v1/audit-log?limit=100");
    expect(audit.items.filter((item) => item.action === "invoice.void").map((item) => item.targetId)).toEqual([created.id]);
  });

  it("ten concurrent voids of one invoice reverse it exactly once", async () => {
    const shop = await stockedShop();
    const created = await post<Invoice>(shop.agent, "/api/v1/invoices", {
      customerId: shop.customerId,
      items: [{ productId: shop.sugarId, quantity: 3 }],
    });
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => api(`/api/v1/invoices/${created.id}/void`, { method: "POST", token: shop.agent, body: {} })),
    );
    expect(responses.map((r) => r.status).sort()).toEqual([200, ...Array(9).fill(409)]);
    const ledger = await get<{ items: Array<{ kind: string }> }>(shop.agent, `/api/v1/customers/${shop.customerId}/ledger`);
    expect(ledger.items.map((e) => e.kind)).toEqual(["invoice", "void"]);
    expect((await get<{ balance: number }>(shop.agent, `/api/v1/customers/${shop.customerId}`)).balance).toBe(0);
    await expectLedgerInvariant(shop.tenantId);
  });

  it("Idempotency-Key: a retry answers the first invoice; another body is 422; concurrent retries write once", async () => {
    const shop = await stockedShop();
    const body = { customerId: shop.customerId, items: [{ productId: shop.sugarId, quantity: 1 }] };
    const key = { "Idempotency-Key": crypto.randomUUID() };
    const first = await post<Invoice>(shop.agent, "/api/v1/invoices", body, 201, key);
    // The same body with its keys in another order is the same request.
    const retry = await post<Invoice>(shop.agent, "/api/v1/invoices", { items: body.items, customerId: body.customerId }, 201, key);
    expect(retry).toEqual(first);
    await expectRefusedUnchanged(shop.tenantId, invoice(shop.agent, { ...body, notes: "different" }, key), 422, "idempotency_key_reused");
    expect((await booksOf(shop.tenantId)).invoices).toBe(1);

    const racing = { "Idempotency-Key": crypto.randomUUID() };
    const responses = await Promise.all(Array.from({ length: 8 }, () => invoice(shop.agent, body, racing)()));
    const statuses = responses.map((r) => r.status);
    // One writes; the others either replay its answer or are told it is still in progress (409): none writes again.
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
    const ids = new Set(await Promise.all(responses.filter((r) => r.status === 201).map(async (r) => ((await r.json()) as Invoice).id)));
    expect(ids.size).toBe(1);
    expect((await booksOf(shop.tenantId)).invoices).toBe(2);
    expect((await get<{ balance: number }>(shop.agent, `/api/v1/customers/${shop.customerId}`)).balance).toBe(9_000);
    await expectLedgerInvariant(shop.tenantId);
  });

  it("a refused write releases its key: the corrected retry with the same key is written", async () => {
    const shop = await stockedShop();
    const key = { "Idempotency-Key": crypto.randomUUID() };
    const body = { customerId: shop.customerId, items: [{ productName: "Suger", quantity: 1 }] };
    await expectRefusedUnchanged(shop.tenantId, invoice(shop.agent, body, key), 422, "unknown_product");
    await expectRefusedUnchanged(shop.tenantId, invoice(shop.agent, body, key), 422, "unknown_product");
    const corrected = await post<Invoice>(
      shop.agent,
      "/api/v1/invoices",
      { ...body, items: [{ productName: "Sugar", quantity: 1 }] },
      201,
      key,
    );
    expect(corrected.total).toBe(4_500);
    await expectLedgerInvariant(shop.tenantId);
  });
});
