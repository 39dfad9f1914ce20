import { eq, isNull, lt } from "drizzle-orm";
import type { Database } from "../shared/db/client.ts";
import { type Standing, standingsOf } from "../shared/db/principal-standing.ts";
import { refreshTokenFamilies, revokedTokens, users } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { serviceUnavailable } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { AccessClaims } from "./tokens.ts";

/**
 * Revocation lives in D1 alone (revoked_tokens rows, users.tokens_valid_after, users.disabled_at, users.role), and
 * every request — reads included — consults it: one round trip of primary-key lookups, what an API key has always
 * cost. An eventually consistent cache in front of it (KV takes up to a minute to reach every location) let a
 * demoted, disabled or logged-out user keep reading for that long. If D1 cannot answer, the request is refused
 * with 503: a revocation check never fails open.
 */
export async function checkRevocation(env: Env, claims: AccessClaims, log: Logger): Promise<Standing> {
  try {
    const [standing] = await standingsOf(env, claims.tenant, [{ kind: "user", id: claims.sub, tokenId: claims.jti, issuedAt: claims.iat }]);
    return standing!;
  } catch (error) {
    log.error("auth.revocation_unavailable", { error });
    throw serviceUnavailable("revocation_check_unavailable", "Cannot verify the token right now; retry shortly");
  }
}

/** Revokes one access token (logout). */
export function revokeAccessToken(scope: TenantScope, claims: AccessClaims) {
  return scope.insert(revokedTokens, { jti: claims.jti, userId: claims.sub, expiresAt: claims.exp * 1000 }).onConflictDoNothing();
}

/**
 * Statements that kill every token of a user issued before now (revoke-all, role change, disable); run them in the
 * caller's batch.
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

/** Housekeeping for the cron: drop revoked-token rows whose tokens have expired anyway. */
export function purgeExpiredRevocations(db: Database) {
  return db.delete(revokedTokens).where(lt(revokedTokens.expiresAt, Date.now()));
}
