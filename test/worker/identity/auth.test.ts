import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, createTenant, createUser, errorOf, login, userWithToken } from "../support/identity.ts";

async function auditActions(tenantId: string): Promise<string[]> {
  const { results } = await env.DB.prepare("SELECT action, outcome FROM audit_log WHERE tenant_id = ? ORDER BY created_at")
    .bind(tenantId)
    .all<{ action: string; outcome: string }>();
  return results.map((row) => `${row.action}:${row.outcome}`);
}

describe("login", () => {
  it("issues an EdDSA access token with the contract's claims and a refresh token", async () => {
    const tenantId = await createTenant();
    const user = await createUser(tenantId, "agent");
    const tokens = await login(user.email.toUpperCase());
    expect(tokens.expiresIn).toBe(900);
    const [header, payload] = tokens.accessToken
      .split(".")
      .slice(0, 2)
      .map((part) => JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/"))));
    expect(header).toMatchObject({ alg: "EdDSA", kid: "test-key-1" });
    expect(payload).toMatchObject({ iss: env.JWT_ISSUER, aud: env.JWT_AUDIENCE, sub: user.id, tenant: tenantId, role: "agent" });
    expect(payload.exp - payload.iat).toBe(900);
    expect(typeof payload.jti).toBe("string");
    expect(tokens.refreshToken).toMatch(/^rt_/);
    expect(await auditActions(tenantId)).toContain("auth.login:success");
  });

  it("answers 401 for a wrong password or an unknown email, and audits the known account", async () => {
    const tenantId = await createTenant();
    const user = await createUser(tenantId, "viewer");
    const wrong = await api("/api/v1/auth/login", { method: "POST", body: { email: user.email, password: "nope" } });
    expect(wrong.status).toBe(401);
    expect((await errorOf(wrong)).code).toBe("unauthorized");
    const unknown = await api("/api/v1/auth/login", { method: "POST", body: { email: "ghost@example.test", password: "nope" } });
    expect(unknown.status).toBe(401);
    expect(await auditActions(tenantId)).toEqual(["auth.login:failure"]);
  });
});

describe("logout and revoke-all", () => {
  it("logout revokes the access token for reads and writes, and its refresh family", async () => {
    const tenantId = await createTenant();
    const admin = await userWithToken(tenantId, "admin");
    expect((await api("/api/v1/users", { token: admin.accessToken })).status).toBe(200);
    expect((await api("/api/v1/auth/logout", { method: "POST", token: admin.accessToken })).status).toBe(204);
    expect((await api("/api/v1/users", { token: admin.accessToken })).status).toBe(401);
    const write = await api("/api/v1/users", {
      method: "POST",
      token: admin.accessToken,
      body: { email: "x@example.test", password: "a-long-password", role: "viewer" },
    });
    expect(write.status).toBe(401);
    expect((await api("/api/v1/auth/refresh", { method: "POST", body: { refreshToken: admin.refreshToken } })).status).toBe(401);
  });

  it("revoke-all ends every token issued before it, and a new login works", async () => {
    const tenantId = await createTenant();
    const admin = await createUser(tenantId, "admin");
    const a = await login(admin.email);
    const b = await login(admin.email);
    expect((await api("/api/v1/auth/revoke-all", { method: "POST", token: a.accessToken })).status).toBe(204);
    for (const tokens of [a, b]) {
      expect((await api("/api/v1/users", { token: tokens.accessToken })).status).toBe(401);
      expect((await api("/api/v1/auth/refresh", { method: "POST", body: { refreshToken: tokens.refreshToken } })).status).toBe(401);
    }
    const fresh = await login(admin.email);
    expect((await api("/api/v1/users", { token: fresh.accessToken })).status).toBe(200);
    expect(await auditActions(tenantId)).toContain("auth.revoke_all:success");
  });
});

describe("JWKS", () => {
  it("publishes every verification key without private parts", async () => {
    const response = await api("/.well-known/jwks.json");
    expect(response.status).toBe(200);
    const { keys } = (await response.json()) as { keys: Array<Record<string, unknown>> };
    expect(keys.map((key) => key.kid)).toEqual(["test-key-1", "test-key-2"]);
    for (const key of keys) {
      expect(key).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
      expect(key.d).toBeUndefined();
    }
  });
});
