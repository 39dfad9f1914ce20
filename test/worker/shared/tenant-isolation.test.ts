import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { postTwilio, randomCallSid, randomE164, twilioCallParams } from "../support/carriers.ts";
import { api, createTenant, createUser, userWithToken } from "../support/identity.ts";
import { documentedOperations } from "../support/openapi.ts";

/**
 * For every route that takes an id, tenant A's admin asking for tenant B's object gets 404 — the same answer as
 * for an id that does not exist, so nothing leaks — and B's object is unchanged. A new id-taking route fails this
 * test until it is given a fixture below.
 */
type Fixture = { create: (tenantId: string, adminToken: string) => Promise<string>; snapshot: (id: string) => Promise<unknown> };

const rowOf = (table: string) => (id: string) => env.DB.prepare(`SELECT * FROM ${table} WHERE id = ?`).bind(id).first();

const FIXTURES: Record<string, Fixture> = {
  "/api/v1/users/{id}": { create: async (tenantId) => (await createUser(tenantId, "agent")).id, snapshot: rowOf("users") },
  "/api/v1/api-keys/{id}": {
    create: async (_tenantId, adminToken) => {
      const response = await api("/api/v1/api-keys", { method: "POST", token: adminToken, body: { name: "b-key", role: "agent" } });
      return ((await response.json()) as { id: string }).id;
    },
    snapshot: rowOf("api_keys"),
  },
  "/api/v1/phone-numbers/{id}": {
    create: async (_tenantId, adminToken) => (await phoneNumberIn(adminToken)).id,
    snapshot: rowOf("phone_numbers"),
  },
  "/api/v1/calls/{id}": {
    create: async (_tenantId, adminToken) => {
      const { e164 } = await phoneNumberIn(adminToken);
      const callSid = randomCallSid();
      await postTwilio("/telephony/twilio/voice", twilioCallParams(callSid, e164, "ringing"));
      const row = await env.DB.prepare("SELECT id FROM calls WHERE carrier_call_id = ?").bind(callSid).first<{ id: string }>();
      return row!.id;
    },
    snapshot: rowOf("calls"),
  },
  "/api/v1/sessions/{id}": {
    create: async (tenantId) => {
      const id = crypto.randomUUID();
      await env.DB.prepare(
        "INSERT INTO sessions (id, tenant_id, channel, status, provider, correlation_id, created_at) VALUES (?, ?, 'web', 'active', 'local', ?, ?)",
      )
        .bind(id, tenantId, `corr-${id}`, Date.now())
        .run();
      return id;
    },
    snapshot: rowOf("sessions"),
  },
  "/api/v1/customers/{id}": { create: (_tenantId, adminToken) => customerIn(adminToken), snapshot: rowOf("customers") },
  "/api/v1/products/{id}": {
    create: async (_tenantId, adminToken) =>
      idOf(await api("/api/v1/products", { method: "POST", token: adminToken, body: { name: "B's", unitPrice: 500 } })),
    snapshot: rowOf("products"),
  },
  "/api/v1/invoices/{id}": {
    create: async (_tenantId, adminToken) => {
      const body = { customerId: await customerIn(adminToken), items: [{ productName: "Goods", quantity: 1, unitPrice: 900 }] };
      return idOf(await api("/api/v1/invoices", { method: "POST", token: adminToken, body }));
    },
    snapshot: rowOf("invoices"),
  },
  "/api/v1/reminders/{id}": {
    create: async (_tenantId, adminToken) => {
      const customerId = await customerIn(adminToken);
      const dueAt = new Date(Date.now() + 3_600_000).toISOString();
      const body = { customerId, dueAt, message: "B's reminder.", channel: "sms" };
      const response = await api("/api/v1/reminders", { method: "POST", token: adminToken, body });
      return ((await response.json()) as { id: string }).id;
    },
    snapshot: rowOf("reminders"),
  },
  "/api/v1/prompts/{id}": {
    create: async (_tenantId, adminToken) =>
      idOf(await api("/api/v1/prompts", { method: "POST", token: adminToken, body: { name: "B's", instructions: "B's agent." } })),
    // The prompt and its versions: neither a new version nor a rollback may reach B's.
    snapshot: async (id) => ({
      prompt: await rowOf("prompts")(id),
      versions: (await env.DB.prepare("SELECT * FROM prompt_versions WHERE prompt_id = ?").bind(id).all()).results,
    }),
  },
  "/api/v1/privacy/erasure/{requestId}/confirm": {
    create: async (_tenantId, adminToken) => {
      const body = { customerId: await customerIn(adminToken) };
      const response = await api("/api/v1/privacy/erasure", { method: "POST", token: adminToken, body });
      return ((await response.json()) as { requestId: string }).requestId;
    },
    // A's confirm is not B's: neither a try counted against B's request nor, of course, a sweep.
    snapshot: rowOf("erasure_requests"),
  },
};

const idOf = async (response: Response) => ((await response.json()) as { id: string }).id;
const customerIn = async (adminToken: string) =>
  idOf(await api("/api/v1/customers", { method: "POST", token: adminToken, body: { name: "B's customer", phone: randomE164() } }));

async function phoneNumberIn(adminToken: string, carrier = "twilio") {
  const e164 = randomE164();
  const response = await api("/api/v1/phone-numbers", { method: "POST", token: adminToken, body: { e164, carrier } });
  return { e164, id: ((await response.json()) as { id: string }).id };
}

/** A body the route would accept, so validation passes and only ownership decides. */
function sampleBody(method: string, path: string): unknown {
  if (method === "PATCH" && path.startsWith("/api/v1/customers/")) return { name: "Renamed" };
  if (method === "PATCH" && path.startsWith("/api/v1/products/")) return { unitPrice: 100 };
  if (method === "PATCH" && path.startsWith("/api/v1/phone-numbers/")) return { codec: "PCMA" };
  if (method === "PATCH") return { role: "viewer" };
  if (path.endsWith("/void")) return {};
  if (path.endsWith("/versions")) return { instructions: "A's agent." };
  if (path.endsWith("/rollback")) return { version: 1 };
  if (path.endsWith("/transfer")) return { to: "+15550001111" };
  if (path.endsWith("/switch-provider")) return { provider: "gemini" };
  if (path.endsWith("/confirm")) return { code: "123456" };
  return undefined;
}

let tenantA: { accessToken: string };
let tenantB: { tenantId: string; accessToken: string };

beforeAll(async () => {
  tenantA = await userWithToken(await createTenant("A"), "admin");
  tenantB = await userWithToken(await createTenant("B"), "admin");
});

describe("tenant isolation", () => {
  it("every id-taking route answers 404 for another tenant's object and leaves it untouched", async () => {
    // Public routes carry their own credential instead of a bearer (a recording's signed link answers 403 to anyone
    // without it, whatever their tenant): only bearer routes are about tenants.
    const operations = (await documentedOperations()).filter((o) => o.path.includes("{") && o.permission !== "public");
    expect(operations.length).toBeGreaterThan(0);
    for (const operation of operations) {
      // Sub-resources (/calls/{id}/hangup) share the fixture of the object they act on.
      const fixture = FIXTURES[operation.path.replace(/\{id\}.*$/, "{id}")];
      expect(fixture, `no isolation fixture for ${operation.path}`).toBeDefined();
      const id = await fixture!.create(tenantB.tenantId, tenantB.accessToken);
      const before = await fixture!.snapshot(id);
      const response = await api(operation.path.replace(/\{\w+\}/, id), {
        method: operation.method,
        token: tenantA.accessToken,
        body: sampleBody(operation.method, operation.path),
      });
      expect(response.status, `${operation.method} ${operation.path}`).toBe(404);
      expect(await fixture!.snapshot(id)).toEqual(before);
    }
  });

  it("lists only the caller's tenant", async () => {
    const response = await api("/api/v1/users", { token: tenantA.accessToken });
    const { items } = (await response.json()) as { items: Array<{ id: string }> };
    const { results } = await env.DB.prepare("SELECT id FROM users WHERE tenant_id = ?").bind(tenantB.tenantId).all<{ id: string }>();
    expect(results.length).toBeGreaterThan(0);
    for (const row of results) expect(items.map((item) => item.id)).not.toContain(row.id);
  });
});
