import { and, eq, isNull, lt } from "drizzle-orm";
import type { Database } from "../shared/db/client.ts";
import { refreshTokenFamilies, revokedTokens, users } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { serviceUnavailable } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { ACCESS_TOKEN_TTL_SECONDS, type AccessClaims } from "./tokens.ts";

/**
 * Revocation in two tiers. D1 is the truth (revoked_tokens rows, users.tokens_valid_after); KV mirrors it with a TTL
 * equal to the remaining token life, so reads are fast at the edge.
 *
 * Policy (README "Revocation"): safe methods (GET/HEAD) consult KV and fall back to D1 if KV cannot be read;
 * every write consults D1 directly, so a revoked token never performs a write because KV was stale or down.
 * If D1 cannot answer either, the request is refused with 503: a revocation check never fails open.
 */
const KV_MIN_TTL = 60;
const jtiKey = (jti: string) => `revoked:jti:${jti}`;
const userKey = (userId: string) => `revoked:user:${userId}`;

export interface RevocationVerdict {
  revoked: boolean;
  /** From D1, on consistent checks: the user's role now (a demotion takes effect at once for writes). */
  currentRole?: AccessClaims["role"];
}

export async function checkRevocation(
  env: Env,
  db: Database,
  claims: AccessClaims,
  consistent: boolean,
  log: Logger,
): Promise<RevocationVerdict> {
  if (!consistent) {
    try {
      const [jti, user] = await Promise.all([env.CACHE.get(jtiKey(claims.jti)), env.CACHE.get(userKey(claims.sub))]);
      return { revoked: jti !== null || (user !== null && claims.iat < Number(user)) };
    } catch (error) {
      log.warn("auth.revocation_kv_unavailable", { error });
    }
  }
  try {
    const [row] = await db
      .select({
        role: users.role,
        tokensValidAfter: users.tokensValidAfter,
        disabledAt: users.disabledAt,
        revokedJti: revokedTokens.jti,
      })
      .from(users)
      .leftJoin(revokedTokens, eq(revokedTokens.jti, claims.jti))
      .where(and(eq(users.id, claims.sub), eq(users.tenantId, claims.tenant)));
    if (!row) return { revoked: true };
    const revoked = row.revokedJti !== null || row.disabledAt !== null || claims.iat < row.tokensValidAfter;
    return { revoked, currentRole: row.role };
  } catch (error) {
    log.error("auth.revocation_unavailable", { error });
    throw serviceUnavailable("revocation_check_unavailable", "Cannot verify the token right now; retry shortly");
  }
}

/** Revokes one access token (logout): D1 row first (truth), then the KV mirror. */
export async function revokeAccessToken(env: Env, scope: TenantScope, claims: AccessClaims, log: Logger): Promise<void> {
  await scope.insert(revokedTokens, { jti: claims.jti, userId: claims.sub, expiresAt: claims.exp * 1000 }).onConflictDoNothing();
  const ttl = Math.max(KV_MIN_TTL, claims.exp - Math.floor(Date.now() / 1000));
  await mirror(() => env.CACHE.put(jtiKey(claims.jti), "1", { expirationTtl: ttl }), log);
}

/**
 * Statements that kill every token of a user issued before now (revoke-all, role change, disable); run them in the
 * caller's batch, then call `mirrorUserCutoff`.
 */
export function revokeAllStatements(scope: TenantScope, userId: string, cutoffSeconds: number, reason: string) {
  const now = Date.now();
  return [
    scope.update(users, { tokensValidAfter: cutoffSeconds, updatedAt: now }, eq(users.id, userId)),
    scope.update(
      refreshTokenFamilies,
      { revokedAt: now, revokedReason: reason },
      eq(refreshTokenFamilies.userId, userId),
      isNull(refreshTokenFamilies.revokedAt),
    ),
  ] as const;
}

/** Rounded up, so a token issued earlier in this same second is also cut off. */
export const cutoffNow = () => Math.ceil(Date.now() / 1000);

export async function mirrorUserCutoff(env: Env, userId: string, cutoffSeconds: number, log: Logger): Promise<void> {
  await mirror(() => env.CACHE.put(userKey(userId), String(cutoffSeconds), { expirationTtl: ACCESS_TOKEN_TTL_SECONDS + KV_MIN_TTL }), log);
}

/** Housekeeping for the cron: drop revoked-token rows whose tokens have expired anyway. */
export function purgeExpiredRevocations(db: Database) {
  return db.delete(revokedTokens).where(lt(revokedTokens.expiresAt, Date.now()));
}

/** A failed KV write is not fatal: D1 already holds the revocation and writes always consult D1. */
async function mirror(write: () => Promise<void>, log: Logger): Promise<void> {
  try {
    await write();
  } catch (error) {
    log.warn("auth.revocation_mirror_failed", { error });
  }
}
