import { and, eq, inArray, isNull, lt, sql } from "drizzle-orm";
import type { Database } from "../shared/db/client.ts";
import { idempotencyKeys } from "../shared/db/schema.ts";
import { TenantScope, tenantScopeOn } from "../shared/db/tenant-scope.ts";
import { sha256Hex } from "../shared/encoding.ts";
import { BusinessError } from "./errors.ts";

/** What a write answered: replayed as is for a retry with the same key and body. */
export interface StoredAnswer<T> {
  status: number;
  body: T;
  /** True when this is a retry's replay rather than the write itself. */
  replayed: boolean;
}

/**
 * How long a key (and its stored answer) is kept: far past any client's retries, a provider's tool-call replays or a
 * WhatsApp draft's "yes"; a request with the same key after that is a new request.
 */
export const IDEMPOTENCY_RETENTION_MS = 30 * 24 * 60 * 60_000;
/** Keys deleted per statement and statements per cron run: a backlog drains over runs, never in one long write. */
const PURGE_BATCH = 500;
const PURGE_BATCHES_PER_RUN = 20;

/** `Idempotency-Key` as clients send it: printable ASCII, short enough to index. */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

/**
 * Runs `write` once per (tenant, scope, key). The key is claimed first (an insert that only one request can win),
 * so concurrent requests with one key cannot both write: the others see the claim and get 409
 * `idempotency_in_progress`, or once the answer is stored, the answer. The same key with another body is 422
 * `idempotency_key_reused`. A write that fails releases the key (the engine's writes are all-or-nothing batches, so
 * a failed one wrote nothing and a retry may run it). `db` is the D1 binding (the call objects) or the request's
 * TenantScope (the routes).
 */
export async function runOnce<T>(
  db: D1Database | TenantScope,
  tenantId: string,
  scope: string,
  key: string,
  request: unknown,
  write: () => Promise<{ status: number; body: T }>,
): Promise<StoredAnswer<T>> {
  if (!IDEMPOTENCY_KEY.test(key))
    throw new BusinessError("invalid_idempotency_key", 400, "Idempotency-Key must be 1 to 200 printable characters without spaces");
  if (db instanceof TenantScope && db.tenantId !== tenantId) throw new Error("an idempotency key's scope must be its tenant's");
  const tenant = db instanceof TenantScope ? db : tenantScopeOn(db, tenantId);
  const requestHash = await sha256Hex(canonical(request));
  const claim = await tenant.insert(idempotencyKeys, { scope, key, requestHash, createdAt: Date.now() }).onConflictDoNothing().run();
  const mine = and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key));
  if (claim.meta.changes === 0) {
    const [row] = (await tenant.select(idempotencyKeys, mine)) as Array<typeof idempotencyKeys.$inferSelect>;
    if (!row) throw new BusinessError("idempotency_in_progress", 409, "A request with this Idempotency-Key just finished failing; retry");
    if (row.requestHash !== requestHash)
      throw new BusinessError("idempotency_key_reused", 422, "This Idempotency-Key was used with a different request");
    if (row.responseStatus === null || row.responseBody === null)
      throw new BusinessError("idempotency_in_progress", 409, "A request with this Idempotency-Key is still being processed; retry");
    return { status: row.responseStatus, body: JSON.parse(row.responseBody) as T, replayed: true };
  }
  let answer: { status: number; body: T };
  try {
    answer = await write();
  } catch (error) {
    await tenant.delete(idempotencyKeys, mine, isNull(idempotencyKeys.responseStatus)).run();
    throw error;
  }
  await tenant.update(idempotencyKeys, { responseStatus: answer.status, responseBody: JSON.stringify(answer.body) }, mine).run();
  return { ...answer, replayed: false };
}

/**
 * The cron's purge of keys past IDEMPOTENCY_RETENTION_MS, every tenant's (housekeeping by age, like expired
 * revocations: no tenant's data is read). Returns how many went.
 */
export async function purgeExpiredIdempotencyKeys(db: Database, now = Date.now()): Promise<number> {
  const cutoff = now - IDEMPOTENCY_RETENTION_MS;
  let purged = 0;
  for (let batch = 0; batch < PURGE_BATCHES_PER_RUN; batch++) {
    const expired = db.select({ rowid: sql`rowid` }).from(idempotencyKeys).where(lt(idempotencyKeys.createdAt, cutoff)).limit(PURGE_BATCH);
    const { meta } = await db.delete(idempotencyKeys).where(inArray(sql`rowid`, expired)).run();
    purged += meta.changes;
    if (meta.changes < PURGE_BATCH) break;
  }
  return purged;
}

/** The request as JSON with keys sorted, so the same body in another key order is the same request. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object")
    return `{${Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(",")}}`;
  return JSON.stringify(value) ?? "null";
}
