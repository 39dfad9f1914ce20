import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, createTenant, createUser, errorOf, login, randomIp, userWithToken } from "../support/identity.ts";

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

  it("refuses disabled users", async () => {
    const tenantId = await createTenant();
    const admin = await userWithToken(tenantId, "admin");
    const user = await createUser(tenantId, "agent");
    const disable = await api(`/api/v1/users/${user.id}`, { method: "PATCH", token: admin.accessToken, body: { disabled: true } });
    expect(disable.status).toBe(200);
    const attempt = await api("/api/v1/auth/login", { method: "POST", body: { email: user.email, password: user.password } });
    expect(attempt.status).toBe(401);
  });

  it("rate-limits attempts per account across IPs, with Retry-After", async () => {
    const tenantId = await createTenant();
    const user = await createUser(tenantId, "agent");
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const response = await api("/api/v1/auth/login", { method: "POST", body: { email: user.email, password: "wrong" }, ip: randomIp() });
      statuses.push(response.status);
      if (response.status === 429) expect(response.headers.get("Retry-After")).toBe("60");
    }
    expect(statuses.slice(0, 10).every((status) => status === 401)).toBe(true);
    expect(statuses.slice(10)).toEqual([429, 429]);
  });

  it("counts only failures against the account: its owner signing in often is never locked out", async () => {
    const tenantId = await createTenant();
    const user = await createUser(tenantId, "agent");
    for (let i = 0; i < 12; i++) {
      const response = await api("/api/v1/auth/login", {
        method: "POST",
        body: { email: user.email, password: user.password },
        ip: randomIp(),
      });
      expect(response.status, `sign-in ${i + 1}`).toBe(200);
    }
  });

  it("answers a wrong password for a known account exactly as for an unknown one", async () => {
    const tenantId = await createTenant();
    const user = await createUser(tenantId, "agent");
    const known = await api("/api/v1/auth/login", { method: "POST", body: { email: user.email, password: "wrong" }, ip: randomIp() });
    const unknown = await api("/api/v1/auth/login", {
      method: "POST",
      body: { email: `nobody-${crypto.randomUUID()}@example.test`, password: "wrong" },
      ip: randomIp(),
    });
    expect(known.status).toBe(unknown.status);
    const strip = (body: { error: { correlationId?: string } }) => ({ ...body, error: { ...body.error, correlationId: undefined } });
    expect(strip(await known.json())).toEqual(strip(await unknown.json()));
  });

  it("rate-limits attempts per IP across accounts", async () => {
    const ip = "203.0.113.77";
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const response = await api("/api/v1/auth/login", { method: "POST", body: { email: `nobody${i}@example.test`, password: "x" }, ip });
      statuses.push(response.status);
    }
    expect(statuses.at(-1)).toBe(429);
    expect(statuses.filter((status) => status === 401)).toHaveLength(10);
  });
});

describe("refresh", () => {
  it("rotates: the new refresh token works once, the spent one is rejected and kills the family", async () => {
    const tenantId = await createTenant();
    const user = await createUser(tenantId, "agent");
    const first = await login(user.email);
    const refreshed = await api("/api/v1/auth/refresh", { method: "POST", body: { refreshToken: first.refreshToken } });
    expect(refreshed.status).toBe(200);
    const second = (await refreshed.json()) as { accessToken: string; refreshToken: string };
    expect(second.refreshToken).not.toBe(first.refreshToken);

    const reuse = await api("/api/v1/auth/refresh", { method: "POST", body: { refreshToken: first.refreshToken } });
    expect(reuse.status).toBe(401);
    // The family is dead now: even the newest token no longer works.
    const afterReuse = await api("/api/v1/auth/refresh", { method: "POST", body: { refreshToken: second.refreshToken } });
    expect(afterReuse.status).toBe(401);
    expect(await auditActions(tenantId)).toContain("auth.refresh_reuse:failure");
  });

  it("a guessed secret for a known family id is refused but does not kill the family", async () => {
    const tenantId = await createTenant();
    const user = await createUser(tenantId, "agent");
    const first = await login(user.email);
    // The family id is public enough (it is every access token's `sid` claim); the secret is not.
    const familyId = /^rt_([0-9a-f-]{36})\./.exec(first.refreshToken)![1]!;
    for (let i = 0; i < 3; i++) {
      const forged = `rt_${familyId}.${"B".repeat(42)}${i}`;
      expect((await api("/api/v1/auth/refresh", { method: "POST", body: { refreshToken: forged } })).status).toBe(401);
    }
    // The holder's token still works, and no reuse was recorded.
    expect((await api("/api/v1/auth/refresh", { method: "POST", body: { refreshToken: first.refreshToken } })).status).toBe(200);
    expect(await auditActions(tenantId)).not.toContain("auth.refresh_reuse:failure");
  });

  it("rejects malformed and unknown refresh tokens without side effects", async () => {
    for (const refreshToken of ["garbage", `rt_${crypto.randomUUID()}.${"A".repeat(43)}`]) {
      const response = await api("/api/v1/auth/refresh", { method: "POST", body: { refreshToken } });
      expect(response.status).toBe(401);
    }
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

  it("a write with a revoked token is refused even when the KV mirror is missing (D1 is consulted)", async () => {
    const tenantId = await createTenant();
    const admin = await userWithToken(tenantId, "admin");
    expect((await api("/api/v1/auth/revoke-all", { method: "POST", token: admin.accessToken })).status).toBe(204);
    await env.CACHE.delete(`revoked:user:${admin.id}`);
    const write = await api("/api/v1/api-keys", { method: "POST", token: admin.accessToken, body: { name: "k", role: "viewer" } });
    expect(write.status).toBe(401);
    const { results } = await env.DB.prepare("SELECT id FROM api_keys WHERE tenant_id = ?").bind(tenantId).all();
    expect(results).toHaveLength(0);
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
