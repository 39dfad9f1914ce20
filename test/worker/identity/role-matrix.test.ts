import { describe, expect, it } from "vitest";
import type { Role } from "../../../workers/shared/db/schema.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { documentedOperations } from "../support/openapi.ts";

/** The matrix as the README documents it; a change to the code's matrix must be made here too, deliberately. */
const GRANTS: Record<Role, readonly string[]> = {
  admin: [
    "users:read",
    "users:write",
    "api_keys:manage",
    "audit:read",
    "phone_numbers:read",
    "phone_numbers:write",
    "calls:read",
    "calls:create",
    "calls:control",
    "sessions:read",
    "sessions:create",
    "sessions:switch",
    "sessions:supervise",
    "providers:read",
    "self:manage",
    "tenant_settings:read",
    "tenant_settings:write",
    "business:read",
    "customers:write",
    "invoices:write",
    "payments:write",
    "reminders:write",
    "products:write",
    "prompts:read",
    "prompts:write",
    "privacy:manage",
  ],
  supervisor: [
    "phone_numbers:read",
    "calls:read",
    "calls:create",
    "calls:control",
    "sessions:read",
    "sessions:create",
    "sessions:switch",
    "sessions:supervise",
    "providers:read",
    "self:manage",
    "tenant_settings:read",
    "business:read",
    "customers:write",
    "invoices:write",
    "payments:write",
    "reminders:write",
    "prompts:read",
    "prompts:write",
  ],
  agent: [
    "calls:read",
    "calls:create",
    "calls:control",
    "sessions:read",
    "sessions:create",
    "sessions:switch",
    "providers:read",
    "self:manage",
    "tenant_settings:read",
    "business:read",
    "customers:write",
    "invoices:write",
    "payments:write",
    "reminders:write",
    "prompts:read",
  ],
  viewer: ["calls:read", "sessions:read", "providers:read", "self:manage", "tenant_settings:read", "business:read"],
};

const PUBLIC_OPERATIONS = [
  "GET /health",
  "POST /api/v1/auth/login",
  "POST /api/v1/auth/refresh",
  "GET /.well-known/jwks.json",
  // A recording's WAV: its signed link is the credential (README "Recordings").
  "GET /recordings/{id}",
];
// Routes that end the caller's own session: probed last, with a token of their own.
const SELF_ENDING = new Set(["POST /api/v1/auth/logout", "POST /api/v1/auth/revoke-all"]);

describe("role matrix", () => {
  it("every documented operation declares a permission; exactly the known ones are public", async () => {
    const operations = await documentedOperations();
    expect(operations.length).toBeGreaterThan(10);
    for (const operation of operations) expect(operation.permission, `${operation.method} ${operation.path}`).toBeDefined();
    const publicOnes = operations.filter((o) => o.permission === "public").map((o) => `${o.method} ${o.path}`);
    expect(publicOnes.sort()).toEqual([...PUBLIC_OPERATIONS].sort());
  });

  it("each role is allowed exactly what the matrix grants, route by route", async () => {
    const tenantId = await createTenant();
    const operations = (await documentedOperations()).filter((o) => o.permission !== "public");
    for (const role of Object.keys(GRANTS) as Role[]) {
      // One signed-in user per role (a login per operation outgrew the test's time as routes were added); the
      // routes that end their caller's session get a user of their own, so they cannot sign the shared one out.
      const shared = (await userWithToken(tenantId, role)).accessToken;
      for (const operation of operations) {
        const selfEnding = SELF_ENDING.has(`${operation.method} ${operation.path}`);
        const accessToken = selfEnding ? (await userWithToken(tenantId, role)).accessToken : shared;
        // The role check runs before validation, so placeholder ids and an empty body decide nothing else.
        const path = operation.path.replace(/\{[^}]+\}/g, "00000000000000000000000000000000");
        const response = await api(path, {
          method: operation.method,
          token: accessToken,
          body: ["GET", "DELETE"].includes(operation.method) || selfEnding ? undefined : {},
        });
        const label = `${role} ${operation.method} ${operation.path} -> ${response.status}`;
        const granted = GRANTS[role].includes(operation.permission!);
        expect(response.status === 403, label).toBe(!granted);
        expect(response.status, label).not.toBe(401);
      }
    }
  });

  it("API keys carry their own role through the same matrix", async () => {
    const tenantId = await createTenant();
    const admin = await userWithToken(tenantId, "admin");
    const created = await api("/api/v1/api-keys", {
      method: "POST",
      token: admin.accessToken,
      body: { name: "reporting", role: "viewer" },
    });
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };
    expect((await api("/api/v1/audit-log", { token: key })).status).toBe(403);
    expect((await api("/api/v1/users", { token: key })).status).toBe(403);
  });
});
