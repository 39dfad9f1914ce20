import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../http/context.ts";
import { enforceRateLimit } from "../http/rate-limit.ts";
import { type Database, database } from "../shared/db/client.ts";
import { TenantScope } from "../shared/db/tenant-scope.ts";
import { forbidden, unauthorized } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { requireSettings } from "../shared/settings.ts";
import { authenticateApiKey, looksLikeApiKey } from "./api-keys.ts";
import { type Permission, roleHas } from "./permissions.ts";
import type { Principal } from "./principal.ts";
import { checkRevocation } from "./revocation.ts";
import { verifyAccessToken } from "./tokens.ts";

/**
 * Authenticates the bearer credential (access token or API key), applies the per-principal rate limit, and
 * authorises `permission` for the principal's role. Sets `principal`, `scope` (the tenant-bound data access) and a
 * logger carrying the tenant. Every non-public route runs this before its handler.
 */
export function requireAuth(permission: Permission): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const credential = bearerCredential(c.req.header("Authorization"));
    if (!credential) throw unauthorized();
    authorize(c, await authenticate(c, credential), permission);
    await next();
  };
}

/**
 * Resolves a credential (access token or API key) to its principal: signature and claims, revocation, the
 * per-principal rate limit. Throws the platform's 401/429/503 errors. Shared by `requireAuth` and routes that
 * receive the credential some other way (the live WebSocket's subprotocol).
 */
export async function authenticate(c: Context<AppEnv>, credential: string): Promise<Principal> {
  return looksLikeApiKey(credential)
    ? apiKeyPrincipal(c.env, database(c.env.DB), credential, (task) => c.executionCtx.waitUntil(task))
    : tokenPrincipal(c.env, credential, c.get("log"));
}

/** Checks `permission` for the principal's role (403, logged, otherwise) and binds the request to its tenant. */
export function authorize(c: Context<AppEnv>, principal: Principal, permission: Permission): void {
  const log = c.get("log");
  if (!roleHas(principal.role, permission)) {
    log.warn("security.forbidden", { tenantId: principal.tenantId, principalId: principal.id, role: principal.role, permission });
    throw forbidden();
  }
  c.set("principal", principal);
  c.set("scope", new TenantScope(database(c.env.DB), principal.tenantId));
  c.set("log", log.child({ tenantId: principal.tenantId, principalId: principal.id }));
}

/** The credential of an `Authorization: Bearer …` header, or null when absent or malformed. */
export function bearerCredential(header: string | undefined): string | null {
  return header ? credentialShape(/^Bearer (.*)$/.exec(header)?.[1]) : null;
}

/** A credential is 10–4096 visible ASCII characters; anything else is not worth verifying. */
export function credentialShape(value: string | undefined): string | null {
  return value !== undefined && /^[\x21-\x7e]{10,4096}$/.test(value) ? value : null;
}

async function tokenPrincipal(env: Env, token: string, log: Logger): Promise<Principal> {
  const claims = await verifyAccessToken(requireSettings(env, "identity"), token);
  if (!claims) throw unauthorized("Invalid or expired access token");
  await enforceRateLimit(env.API_LIMITER, `user:${claims.sub}`);
  const standing = await checkRevocation(env, claims, log);
  if (standing.role === null || !standing.credentialValid) throw unauthorized("Access token has been revoked");
  return {
    kind: "user",
    id: claims.sub,
    tenantId: claims.tenant,
    // The role now, not the token's: reads and writes alike follow a change at once.
    role: standing.role,
    jti: claims.jti,
    familyId: claims.sid,
    issuedAt: claims.iat,
    expiresAt: claims.exp,
  };
}

async function apiKeyPrincipal(
  env: Env,
  db: Database,
  credential: string,
  background: (task: Promise<unknown>) => void,
): Promise<Principal> {
  const key = await authenticateApiKey(db, credential);
  if (!key) throw unauthorized("Invalid API key");
  await enforceRateLimit(env.API_LIMITER, `api_key:${key.id}`);
  if (key.touch) background(key.touch());
  return { kind: "api_key", id: key.id, tenantId: key.tenantId, role: key.role };
}
