import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { api, createTenant, userWithToken } from "./identity.ts";
import { expectLedgerInvariant } from "./ledger-invariant.ts";

/** A shop for the business API tests: a tenant with an admin (prices products) and an agent (sells), via the API. */
export async function openShop() {
  const tenantId = await createTenant("Shop");
  const admin = (await userWithToken(tenantId, "admin")).accessToken;
  const agent = (await userWithToken(tenantId, "agent")).accessToken;
  return { tenantId, admin, agent };
}

/** POSTs and expects `status`, answering the body. */
export async function post<T = Record<string, unknown>>(
  token: string,
  path: string,
  body: unknown,
  status = 201,
  headers?: Record<string, string>,
) {
  const response = await api(path, { method: "POST", token, body, headers });
  const text = await response.text();
  expect(response.status, `${path}: ${text}`).toBe(status);
  return JSON.parse(text) as T;
}

export async function get<T = Record<string, unknown>>(token: string, path: string, status = 200) {
  const response = await api(path, { token });
  const text = await response.text();
  expect(response.status, `${path}: ${text}`).toBe(status);
  return JSON.parse(text) as T;
}

export interface Books {
  customers: number;
  products: number;
  invoices: number;
  items: number;
  entries: number;
  keys: number;
  balances: number[];
}

/** Everything the tenant's books hold, to compare before and after a refused request: nothing may change. */
export async function booksOf(tenantId: string): Promise<Books> {
  const count = async (table: string) =>
    (await env.DB.prepare(`select count(*) as n from ${table} where tenant_id = ?`).bind(tenantId).first<{ n: number }>())?.n ?? 0;
  const { results } = await env.DB.prepare("select balance from customers where tenant_id = ? order by id")
    .bind(tenantId)
    .all<{ balance: number }>();
  return {
    customers: await count("customers"),
    products: await count("products"),
    invoices: await count("invoices"),
    items: await count("invoice_items"),
    entries: await count("ledger_entries"),
    keys: await count("idempotency_keys"),
    balances: results.map((row) => row.balance),
  };
}

/** Runs a refused request and checks its status and code, that the books are exactly as before, and still add up. */
export async function expectRefusedUnchanged(tenantId: string, request: () => Promise<Response>, status: number, code: string) {
  const before = await booksOf(tenantId);
  const response = await request();
  const body = (await response.json()) as { error: { code: string; details?: { candidates?: unknown[] } } };
  expect(response.status, JSON.stringify(body)).toBe(status);
  expect(body.error.code).toBe(code);
  expect(await booksOf(tenantId)).toEqual(before);
  await expectLedgerInvariant(tenantId);
  return body.error;
}
