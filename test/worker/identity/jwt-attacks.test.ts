import { env } from "cloudflare:workers";
import { generateKeyPair, importJWK, type JWK, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { api, createTenant, errorOf, login, userWithToken } from "../support/identity.ts";

/**
 * Every forged or stale token must get 401 from a route that would otherwise answer 200. The victim is an admin,
 * so a token that slipped through would be worth the most.
 */
let admin: Awaited<ReturnType<typeof userWithToken>>;
const signingKeys = () => (JSON.parse(env.JWT_SIGNING_KEYS) as { keys: Array<JWK & { kid: string }> }).keys;
const b64url = (text: string) => btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

async function sign(claims: Record<string, unknown>, options: { keyIndex?: number; kid?: string; key?: CryptoKey } = {}) {
  const jwk = signingKeys()[options.keyIndex ?? 0]!;
  const { key_ops: _ops, ext: _ext, ...privateJwk } = jwk;
  const key = options.key ?? ((await importJWK({ ...privateJwk, alg: "EdDSA" }, "EdDSA")) as CryptoKey);
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    sub: admin.id,
    tenant: admin.tenantId,
    role: "admin",
    jti: crypto.randomUUID(),
    iss: env.JWT_ISSUER,
    aud: env.JWT_AUDIENCE,
    iat: now,
    exp: now + 600,
    ...claims,
  };
  return new SignJWT(payload).setProtectedHeader({ alg: "EdDSA", kid: options.kid ?? jwk.kid }).sign(key);
}

async function expectRejected(token: string) {
  const response = await api("/api/v1/users", { token });
  expect(response.status).toBe(401);
  expect((await errorOf(response)).code).toBe("unauthorized");
}

beforeAll(async () => {
  admin = await userWithToken(await createTenant(), "admin");
});

describe("JWT attack suite", () => {
  it("accepts a well-formed token (control), including one signed by the second key in rotation", async () => {
    expect((await api("/api/v1/users", { token: await sign({}) })).status).toBe(200);
    expect((await api("/api/v1/users", { token: await sign({}, { keyIndex: 1 }) })).status).toBe(200);
  });

  it("rejects alg: none", async () => {
    const [, payload] = admin.accessToken.split(".");
    await expectRejected(`${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${payload}.`);
  });

  it("rejects HS256 signed with the public key (algorithm confusion)", async () => {
    const publicJwk = (await (await api("/.well-known/jwks.json")).json()) as { keys: JWK[] };
    const now = Math.floor(Date.now() / 1000);
    for (const secret of [JSON.stringify(publicJwk.keys[0]), publicJwk.keys[0]!.x!]) {
      const token = await new SignJWT({ tenant: admin.tenantId, role: "admin" })
        .setProtectedHeader({ alg: "HS256", kid: "test-key-1" })
        .setSubject(admin.id)
        .setJti(crypto.randomUUID())
        .setIssuer(env.JWT_ISSUER)
        .setAudience(env.JWT_AUDIENCE)
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(new TextEncoder().encode(secret));
      await expectRejected(token);
    }
  });

  it("rejects expired and not-yet-valid tokens", async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRejected(await sign({ iat: now - 3600, exp: now - 1800 }));
    await expectRejected(await sign({ nbf: now + 3600 }));
  });

  it("rejects a wrong issuer or audience", async () => {
    await expectRejected(await sign({ iss: "https://evil.example" }));
    await expectRejected(await sign({ aud: "someone-else" }));
  });

  it("rejects an unknown kid, and a foreign key claiming a known kid", async () => {
    const foreign = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    await expectRejected(await sign({}, { key: foreign.privateKey, kid: "unknown-kid" }));
    await expectRejected(await sign({}, { key: foreign.privateKey, kid: "test-key-1" }));
  });

  it("rejects a tampered payload", async () => {
    const viewer = await userWithToken(admin.tenantId, "viewer");
    const [header, payload, signature] = viewer.accessToken.split(".") as [string, string, string];
    const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as Record<string, unknown>;
    await expectRejected(`${header}.${b64url(JSON.stringify({ ...claims, role: "admin" }))}.${signature}`);
  });

  it("rejects tokens with missing or malformed claims", async () => {
    await expectRejected(await sign({ tenant: undefined }));
    await expectRejected(await sign({ role: "superuser" }));
  });

  it("rejects a revoked jti (logout) and tokens cut off by revoke-all", async () => {
    const user = await userWithToken(admin.tenantId, "admin");
    expect((await api("/api/v1/auth/logout", { method: "POST", token: user.accessToken })).status).toBe(204);
    await expectRejected(user.accessToken);

    const other = await login(user.email);
    const second = await login(user.email);
    expect((await api("/api/v1/auth/revoke-all", { method: "POST", token: other.accessToken })).status).toBe(204);
    await expectRejected(second.accessToken);
  });

  it("rejects garbage in the Authorization header", async () => {
    for (const header of ["Bearer", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz", `Bearer ${"a".repeat(5000)}`]) {
      const response = await api("/api/v1/users", { headers: { Authorization: header } });
      expect(response.status).toBe(401);
    }
  });
});
