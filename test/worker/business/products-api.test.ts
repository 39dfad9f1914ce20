import { describe, expect, it } from "vitest";
import { expectRefusedUnchanged, get, openShop, post } from "../support/business.ts";
import { api } from "../support/identity.ts";

/** `/api/v1/products`: admins price the catalogue (audited), everyone reads it; prices are sane minor-unit integers. */
describe("products API", () => {
  it("an admin adds and reprices a product; agents read but cannot price; changes are audited", async () => {
    const shop = await openShop();
    const product = await post<{ id: string; unitPrice: number }>(shop.admin, "/api/v1/products", {
      name: "Basmati Rice",
      unitPrice: 12_000,
      unit: "kg",
      sku: "RICE-1",
    });
    const repriced = await api(`/api/v1/products/${product.id}`, { method: "PATCH", token: shop.admin, body: { unitPrice: 12_500 } });
    expect(await repriced.json()).toMatchObject({ id: product.id, unitPrice: 12_500, unit: "kg" });
    const page = await get<{ items: Array<{ name: string }> }>(shop.agent, "/api/v1/products");
    expect(page.items.map((p) => p.name)).toEqual(["Basmati Rice"]);
    await expectRefusedUnchanged(
      shop.tenantId,
      () => api("/api/v1/products", { method: "POST", token: shop.agent, body: { name: "Cheap", unitPrice: 1 } }),
      403,
      "forbidden",
    );
    const audit = await get<{ items: Array<{ action: string; targetId: string }> }>(shop.admin, "/api/v1/audit-log?limit=100");
    const actions = audit.items.filter((item) => item.targetId === product.id).map((item) => item.action);
    expect(actions.sort()).toEqual(["product.create", "product.update"]);
  });

  it("refuses zero, negative, fractional and absurd prices, duplicate SKUs and unknown products, writing nothing", async () => {
    const shop = await openShop();
    const product = await post<{ id: string }>(shop.admin, "/api/v1/products", { name: "Soap", unitPrice: 4_000, sku: "SOAP" });
    const create = (body: unknown) => () => api("/api/v1/products", { method: "POST", token: shop.admin, body });
    await expectRefusedUnchanged(shop.tenantId, create({ name: "Free", unitPrice: 0 }), 422, "invalid_amount");
    await expectRefusedUnchanged(shop.tenantId, create({ name: "Owed", unitPrice: -500 }), 422, "invalid_amount");
    await expectRefusedUnchanged(shop.tenantId, create({ name: "Half", unitPrice: 10.5 }), 400, "validation_failed");
    await expectRefusedUnchanged(shop.tenantId, create({ name: "Gold", unitPrice: 1e15 }), 422, "invalid_amount");
    await expectRefusedUnchanged(shop.tenantId, create({ name: "Soap 2", unitPrice: 100, sku: "SOAP" }), 409, "sku_taken");
    const patch = (id: string, body: unknown) => () => api(`/api/v1/products/${id}`, { method: "PATCH", token: shop.admin, body });
    await expectRefusedUnchanged(shop.tenantId, patch(product.id, { unitPrice: -1 }), 422, "invalid_amount");
    await expectRefusedUnchanged(shop.tenantId, patch(crypto.randomUUID(), { unitPrice: 100 }), 404, "product_not_found");
    const other = await openShop();
    await expectRefusedUnchanged(
      shop.tenantId,
      () => api(`/api/v1/products/${product.id}`, { method: "PATCH", token: other.admin, body: { unitPrice: 1 } }),
      404,
      "product_not_found",
    );
  });
});
