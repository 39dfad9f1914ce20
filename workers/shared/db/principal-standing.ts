import { inArray } from "drizzle-orm";
import { database } from "./client.ts";
import type { PrincipalRef } from "./principal-ref.ts";
import { apiKeys, type Role, revokedTokens, users } from "./schema.ts";
import { TenantScope } from "./tenant-scope.ts";

/**
 * Whether a principal still holds its access, read from D1 (the truth): every request, and every open `/live`
 * socket from its object every few seconds, is judged by it, so a demotion, a disabled account, a logout, a revoke-all or a
 * revoked key takes effect on the next request at once, on an open socket within its recheck interval.
 */
export type { PrincipalRef } from "./principal-ref.ts";

export interface Standing {
  /** The role held now; null once the user is gone or disabled, or the key revoked. */
  role: Role | null;
  /** False once this very token was revoked (logout) or cut off (revoke-all, a change to the account). */
  credentialValid: boolean;
}

/** `user:<id>` or `api_key:<id>`: how a principal is named as the creator of what it makes (API keys, sessions). */
export const creatorOf = (principal: { kind: PrincipalRef["kind"]; id: string }) => `${principal.kind}:${principal.id}`;

/** One D1 round trip for any number of principals of one tenant; answers in the order asked. Throws if D1 does. */
export async function standingsOf(env: Env, tenantId: string, refs: readonly PrincipalRef[]): Promise<Standing[]> {
  const db = database(env.DB);
  const scope = new TenantScope(db, tenantId);
  const userRefs = refs.filter((ref) => ref.kind === "user");
  const userIds = userRefs.map((ref) => ref.id);
  const tokenIds = userRefs.map((ref) => ref.tokenId);
  const keyIds = refs.filter((ref) => ref.kind === "api_key").map((ref) => ref.id);
  const [userRows, revokedRows, keyRows] = await db.batch([
    db
      .select({ id: users.id, role: users.role, disabledAt: users.disabledAt, tokensValidAfter: users.tokensValidAfter })
      .from(users)
      .where(scope.where(users, inArray(users.id, userIds))),
    db
      .select({ jti: revokedTokens.jti })
      .from(revokedTokens)
      .where(scope.where(revokedTokens, inArray(revokedTokens.jti, tokenIds))),
    db
      .select({ id: apiKeys.id, role: apiKeys.role, revokedAt: apiKeys.revokedAt })
      .from(apiKeys)
      .where(scope.where(apiKeys, inArray(apiKeys.id, keyIds))),
  ]);
  const usersById = new Map(userRows.map((row) => [row.id, row]));
  const revoked = new Set(revokedRows.map((row) => row.jti));
  const keysById = new Map(keyRows.map((row) => [row.id, row]));
  return refs.map((ref) => {
    if (ref.kind === "api_key") {
      const key = keysById.get(ref.id);
      return { role: key && key.revokedAt === null ? key.role : null, credentialValid: true };
    }
    const user = usersById.get(ref.id);
    return {
      role: user && user.disabledAt === null ? user.role : null,
      credentialValid: user !== undefined && !revoked.has(ref.tokenId) && ref.issuedAt >= user.tokensValidAfter,
    };
  });
}
