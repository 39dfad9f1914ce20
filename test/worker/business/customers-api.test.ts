import { describe, expect, it } from "vitest";
import { expectRefusedUnchanged, get, openShop, post } from "../support/business.ts";
import { api, userWithToken } from "../support/identity.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";

/** `/api/v1/customers`: one per phone per tenant, E.164 phones, the balance in the detail, the ledger oldest first. */
interface Customer {
  id: string;
  name: string;
  phone: string | null;
  balance: number;
}

describe("customers API", () => {
  it("adds a customer with the phone normalised; reads, changes and lists them; the balance is in the detail", async () => {
    const shop = await openShop();
    const created = await post<Customer>(shop.agent, "/api/v1/customers", {
      name: "Meera Iyer",
      phone: "+91 98765-43210",
      nickname: "Meeru",
    });
    expect(created).toMatchObject({ name: "Meera Iyer", phone: "+919876543210", balance: 0 });
    await post(shop.agent, "/api/v1/customers", { name: "Arjun Nair" });
    const changed = await api(`/api/v1/customers/${created.id}`, {
      method: "PATCH",
      token: shop.agent,
      body: { nickname: null, notes: "pays on Fridays" },
    });
    expect(changed.status).toBe(200);
    expect(await changed.json()).toMatchObject({ nickname: null, notes: "pays on Fridays", phone: "+919876543210" });

    const first = await get<{ items: Customer[]; nextCursor: string | null }>(shop.agent, "/api/v1/customers?limit=1");
    expect(first.items.map((c) => c.name)).toEqual(["Arjun Nair"]);
    const second = await get<{ items: Customer[]; nextCursor: string | null }>(
      shop.agent,
      `/api/v1/customers?limit=1&cursor=${first.nextCursor}`,
    );
    expect(second.items.map((c) => c.name)).toEqual(["Meera Iyer"]);
    expect(second.nextCursor).toBeNull();
    expect(await get<Customer>(shop.agent, `/api/v1/customers/${created.id}`)).toMatchObject({ balance: 0 });
  });

  it("refuses a second customer with the same number (in any spelling), and a number without its country code", async () => {
    const shop = await openShop();
    await post(shop.agent, "/api/v1/customers", { name: "Kiran", phone: "+919811111111" });
    const other = await post<Customer>(shop.agent, "/api/v1/customers", { name: "Kavya" });
    const create = (body: unknown) => () => api("/api/v1/customers", { method: "POST", token: shop.agent, body });
    await expectRefusedUnchanged(shop.tenantId, create({ name: "Someone", phone: "0091 98111 11111" }), 409, "phone_taken");
    await expectRefusedUnchanged(shop.tenantId, create({ name: "Someone", phone: "98111 11111" }), 400, "invalid_phone");
    await expectRefusedUnchanged(shop.tenantId, create({ name: "" }), 400, "validation_failed");
    await expectRefusedUnchanged(shop.tenantId, create({ name: "X", balance: 100 }), 400, "validation_failed");
    const patch = () => api(`/api/v1/customers/${other.id}`, { method: "PATCH", token: shop.agent, body: { phone: "+91-98111-11111" } });
    await expectRefusedUnchanged(shop.tenantId, patch, 409, "phone_taken");
    // Another shop may have a customer with that number: uniqueness is per tenant.
    const elsewhere = await openShop();
    await post(elsewhere.agent, "/api/v1/customers", { name: "Kiran", phone: "+919811111111" });
  });

  it("another tenant's customer is not found, to read, change or list the ledger of", async () => {
    const shop = await openShop();
    const mine = await post<Customer>(shop.agent, "/api/v1/customers", { name: "Private" });
    const other = await openShop();
    expect((await api(`/api/v1/customers/${mine.id}`, { token: other.agent })).status).toBe(404);
    expect((await api(`/api/v1/customers/${mine.id}/ledger`, { token: other.agent })).status).toBe(404);
    await expectRefusedUnchanged(
      shop.tenantId,
      () => api(`/api/v1/customers/${mine.id}`, { method: "PATCH", token: other.agent, body: { name: "Taken over" } }),
      404,
      "customer_not_found",
    );
    expect((await get<Customer>(shop.agent, `/api/v1/customers/${mine.id}`)).name).toBe("Private");
  });

  it("the ledger reads oldest first with the running balance, a page at a time", async () => {
    const shop = await openShop();
    const customer = await post<Customer>(shop.agent, "/api/v1/customers", { name: "Ledger Lal" });
    await post(shop.agent, "/api/v1/invoices", { customerId: customer.id, items: [{ productName: "Tea", quantity: 3, unitPrice: 1_500 }] });
    for (const amount of [1_000, 2_000, 500]) await post(shop.agent, "/api/v1/payments", { customerId: customer.id, amount, mode: "cash" });
    type Page = { items: Array<{ kind: string; amount: number; balanceAfter: number }>; nextCursor: string | null };
    const first = await get<Page>(shop.agent, `/api/v1/customers/${customer.id}/ledger?limit=2`);
    const rest = await get<Page>(shop.agent, `/api/v1/customers/${customer.id}/ledger?limit=2&cursor=${first.nextCursor}`);
    expect([...first.items, ...rest.items].map((e) => [e.kind, e.amount, e.balanceAfter])).toEqual([
      ["invoice", 4_500, 4_500],
      ["payment", 1_000, 3_500],
      ["payment", 2_000, 1_500],
      ["payment", 500, 1_000],
    ]);
    expect(rest.nextCursor).toBeNull();
    expect((await get<Customer>(shop.agent, `/api/v1/customers/${customer.id}`)).balance).toBe(1_000);
    await expectLedgerInvariant(shop.tenantId);
  });

  it("viewers read customers but cannot add one", async () => {
    const shop = await openShop();
    const viewer = (await userWithToken(shop.tenantId, "viewer")).accessToken;
    expect((await api("/api/v1/customers", { token: viewer })).status).toBe(200);
    await expectRefusedUnchanged(
      shop.tenantId,
      () => api("/api/v1/customers", { method: "POST", token: viewer, body: { name: "No" } }),
      403,
      "forbidden",
    );
  });
});
