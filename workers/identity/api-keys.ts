import { eq } from "drizzle-orm";
import { constantTimeEqualText } from "../shared/constant-time.ts";
import type { Database } from "../shared/db/client.ts";
import { apiKeys, type Role } from "../shared/db/schema.ts";
import { randomToken, sha256Hex } from "../shared/encoding.ts";

/**
 * API keys for server-to-server use: `sbk_<keyId>_<secret>`, scoped to one tenant and one role. Only the SHA-256 of
 * the secret is stored (the secret has 256 bits of entropy, so a slow hash adds nothing); the key is shown once.
 */
const FORMAT = /^sbk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;
const LAST_USED_RESOLUTION_MS = 60_000;

export const looksLikeApiKey = (credential: string) => credential.startsWith("sbk_");

export async function mintApiKey(): Promise<{ id: string; key: string; secretHash: string }> {
  const id = crypto.randomUUID().replace(/-/g, "");
  const secret = randomToken();
  return { id, key: `sbk_${id}_${secret}`, secretHash: await sha256Hex(secret) };
}

export interface ApiKeyIdentity {
  id: string;
  tenantId: string;
  role: Role;
  /** Set when last-used is stale: the caller records it off the request path. */
  touch?: () => Promise<unknown>;
}

export async function authenticateApiKey(db: Database, credential: string): Promise<ApiKeyIdentity | null> {
  const match = FORMAT.exec(credential);
  if (!match) return null;
  const [id, secret] = [match[1]!, match[2]!];
  const [row] = await db.select().from(apiKeys).where(eq(apiKeys.id, id));
  // Hash even when the key is unknown so timing does not reveal which ids exist.
  const presentedHash = await sha256Hex(secret);
  if (!row || row.revokedAt !== null || !constantTimeEqualText(presentedHash, row.secretHash)) return null;
  const now = Date.now();
  const stale = row.lastUsedAt === null || now - row.lastUsedAt > LAST_USED_RESOLUTION_MS;
  return {
    id: row.id,
    tenantId: row.tenantId,
    role: row.role,
    touch: stale ? () => db.update(apiKeys).set({ lastUsedAt: now }).where(eq(apiKeys.id, id)) : undefined,
  };
}
