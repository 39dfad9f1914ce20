import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { BusinessCache } from "../../../workers/business/cache.ts";
import { metrics } from "../../../workers/shared/observability/metrics.ts";
import { get, openShop, post } from "../support/business.ts";
import { api } from "../support/identity.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";

/**
 * The business engine's read cache on real KV: memory, then KV, then the loader; a write's invalidation is seen by
 * the writer at once and by a fresh isolate through KV; each tier's hits and misses are counted.
 */
const tenantId = () => `cache-tenant-${crypto.randomUUID()}`;

/** The cache counters recorded since the last call, as `tier/kind/result` → count. */
function cacheCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [key, delta] of metrics.take()?.counters ?? []) {
    const match = key.match(/^cache_requests_total\{tier="(\w+)",kind="(\w+)",result="(\w+)"\}$/);
    if (match) counts[`${match[1]}/${match[2]}/${match[3]}`] = delta;
  }
  return counts;
}

// Whatever each scenario did, every customer's balance is the sum of their ledger.
afterEach(() => expectLedgerInvariant());

describe("business cache", () => {
  it("loads once, then answers from memory; KV holds it for the other isolates", async () => {
    const tenant = tenantId();
    let loads = 0;
    const load = async () => ({ loaded: ++loads });
    cacheCounts();
    const cache = new BusinessCache(env.CACHE, tenant);
    expect(await cache.read("product_catalogue", "all", load)).toEqual({ loaded: 1 });
    expect(await cache.read("product_catalogue", "all", load)).toEqual({ loaded: 1 });
    expect(cacheCounts()).toEqual({
      "memory/product_catalogue/miss": 1,
      "kv/product_catalogue/miss": 1,
      "memory/product_catalogue/hit": 1,
    });

    // The KV tier holds it under the tenant's current generation, for whoever has not got it in memory.
    const keys = (await env.CACHE.list({ prefix: `biz:${tenant}:product_catalogue:` })).keys;
    expect(keys).toHaveLength(1);
    expect(await env.CACHE.get(keys[0]!.name, "json")).toEqual({ value: { loaded: 1 } });
  });

  it("an invalidation makes the writer's next read load again, and other kinds keep their entries", async () => {
    const tenant = tenantId();
    const cache = new BusinessCache(env.CACHE, tenant);
    let balance = 100;
    let products = 0;
    expect(await cache.read("balance", "c1", async () => balance)).toBe(100);
    expect(await cache.read("product_catalogue", "all", async () => ++products)).toBe(1);
    balance = 40;
    await cache.invalidate("balance");
    expect(await cache.read("balance", "c1", async () => balance)).toBe(40);
    expect(await cache.read("product_catalogue", "all", async () => ++products)).toBe(1);
    // The new generation is in KV, where other isolates look.
    expect(await env.CACHE.get(`biz-gen:${tenant}:balance`)).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("tenants never share entries", async () => {
    const [a, b] = [new BusinessCache(env.CACHE, tenantId()), new BusinessCache(env.CACHE, tenantId())];
    expect(await a.read("customer_list", "page1", async () => "a's customers")).toBe("a's customers");
    expect(await b.read("customer_list", "page1", async () => "b's customers")).toBe("b's customers");
  });
});

describe("business reads through the cache", () => {
  it("a writer reads its own write: the balance, the list and the invoice history change with each money write", async () => {
    const shop = await openShop();
    const customer = await post<{ id: string }>(shop.agent, "/api/v1/customers", { name: "Meera Pillai" });
    const detail = () => get<{ balance: number }>(shop.agent, `/api/v1/customers/${customer.id}`);
    const invoicesOf = () => get<{ items: unknown[] }>(shop.agent, `/api/v1/invoices?customerId=${customer.id}`);
    expect((await detail()).balance).toBe(0);
    expect((await invoicesOf()).items).toHaveLength(0);
    cacheCounts();
    // Read again: served from this isolate's memory, D1 not asked.
    expect((await detail()).balance).toBe(0);
    expect(cacheCounts()["memory/balance/hit"]).toBe(1);

    await post(shop.agent, "/api/v1/invoices", {
      customerId: customer.id,
      items: [{ productName: "Tea", quantity: 2, unitPrice: 12_000 }],
    });
    expect((await detail()).balance).toBe(24_000);
    expect((await invoicesOf()).items).toHaveLength(1);
    const listed = await get<{ items: Array<{ id: string; balance: number }> }>(shop.agent, "/api/v1/customers");
    expect(listed.items.find((c) => c.id === customer.id)?.balance).toBe(24_000);

    await post(shop.agent, "/api/v1/payments", { customerId: customer.id, amount: 4_000, mode: "cash" });
    expect((await detail()).balance).toBe(20_000);
    const relisted = await get<{ items: Array<{ id: string; balance: number }> }>(shop.agent, "/api/v1/customers");
    expect(relisted.items.find((c) => c.id === customer.id)?.balance).toBe(20_000);
  });

  it("a product's new price is what the catalogue shows next", async () => {
    const shop = await openShop();
    const rice = await post<{ id: string }>(shop.admin, "/api/v1/products", { name: "Rice", unitPrice: 6_000, unit: "kg" });
    expect((await get<{ items: Array<{ unitPrice: number }> }>(shop.agent, "/api/v1/products")).items[0]?.unitPrice).toBe(6_000);
    await api(`/api/v1/products/${rice.id}`, { method: "PATCH", token: shop.admin, body: { unitPrice: 6_500 } });
    expect((await get<{ items: Array<{ unitPrice: number }> }>(shop.agent, "/api/v1/products")).items[0]?.unitPrice).toBe(6_500);
  });
});
