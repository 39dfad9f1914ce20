import { and, eq, isNull } from "drizzle-orm";
import { constantTimeEqualText } from "../shared/constant-time.ts";
import type { Database } from "../shared/db/client.ts";
import { refreshTokenFamilies, spentRefreshTokens } from "../shared/db/schema.ts";
import { TenantScope } from "../shared/db/tenant-scope.ts";
import { randomToken, sha256Hex } from "../shared/encoding.ts";

/**
 * Rotating refresh tokens. A login starts a family; each refresh spends the presented token and issues the next
 * one. Only the newest token of a family is usable: presenting an older one — a token this family issued and
 * spent — means it was copied, so the whole family is revoked (the legitimate holder logs in again, the thief gets
 * nothing). A token the family never issued (the family id is the `sid` claim of every access token, so anyone
 * holding one can guess at secrets) is only refused: it must not let a stranger log the user out.
 * Token format: `rt_<familyId>.<secret>`; only its SHA-256 is stored.
 */
export const REFRESH_TOKEN_TTL_MS = 30 * 24 * 3600 * 1000;
const FORMAT = /^rt_([0-9a-f-]{36})\.([A-Za-z0-9_-]{43})$/;

export interface NewFamily {
  familyId: string;
  token: string;
  statement: ReturnType<TenantScope["insert"]>;
}

export async function startFamily(scope: TenantScope, userId: string): Promise<NewFamily> {
  const familyId = crypto.randomUUID();
  const token = `rt_${familyId}.${randomToken()}`;
  const now = Date.now();
  const statement = scope.insert(refreshTokenFamilies, {
    id: familyId,
    userId,
    currentHash: await sha256Hex(token),
    generation: 0,
    createdAt: now,
    expiresAt: now + REFRESH_TOKEN_TTL_MS,
  });
  return { familyId, token, statement };
}

export type RotationResult =
  | { ok: true; token: string; familyId: string; tenantId: string; userId: string }
  | {
      ok: false;
      reason: "malformed" | "unknown" | "expired" | "revoked" | "reused";
      tenantId?: string;
      userId?: string;
      familyId?: string;
    };

export async function rotate(db: Database, presented: string): Promise<RotationResult> {
  const match = FORMAT.exec(presented);
  if (!match) return { ok: false, reason: "malformed" };
  const familyId = match[1]!;
  const [family] = await db.select().from(refreshTokenFamilies).where(eq(refreshTokenFamilies.id, familyId));
  if (!family) return { ok: false, reason: "unknown" };
  const who = { tenantId: family.tenantId, userId: family.userId, familyId };
  if (family.revokedAt !== null) return { ok: false, reason: "revoked", ...who };
  if (family.expiresAt < Date.now()) return { ok: false, reason: "expired", ...who };

  const presentedHash = await sha256Hex(presented);
  if (!constantTimeEqualText(presentedHash, family.currentHash)) {
    const [spent] = await db
      .select({ familyId: spentRefreshTokens.familyId })
      .from(spentRefreshTokens)
      .where(and(eq(spentRefreshTokens.tokenHash, presentedHash), eq(spentRefreshTokens.familyId, familyId)));
    if (!spent) return { ok: false, reason: "unknown" };
    await revokeFamily(new TenantScope(db, family.tenantId), familyId, "reuse_detected");
    return { ok: false, reason: "reused", ...who };
  }

  const next = `rt_${familyId}.${randomToken()}`;
  // Conditional on the hash we checked: of two concurrent refreshes with one token, exactly one wins.
  const updated = await db
    .update(refreshTokenFamilies)
    .set({ currentHash: await sha256Hex(next), generation: family.generation + 1 })
    .where(
      and(
        eq(refreshTokenFamilies.id, familyId),
        eq(refreshTokenFamilies.currentHash, presentedHash),
        isNull(refreshTokenFamilies.revokedAt),
      ),
    )
    .returning({ id: refreshTokenFamilies.id });
  if (updated.length === 0) {
    await revokeFamily(new TenantScope(db, family.tenantId), familyId, "reuse_detected");
    return { ok: false, reason: "reused", ...who };
  }
  // Remembered as spent, so presenting it again is recognised as a copy (and only then revokes the family).
  await new TenantScope(db, family.tenantId).insert(spentRefreshTokens, { tokenHash: presentedHash, familyId, spentAt: Date.now() });
  return { ok: true, token: next, ...who };
}

export function revokeFamily(scope: TenantScope, familyId: string, reason: string) {
  return scope.update(
    refreshTokenFamilies,
    { revokedAt: Date.now(), revokedReason: reason },
    eq(refreshTokenFamilies.id, familyId),
    isNull(refreshTokenFamilies.revokedAt),
  );
}
