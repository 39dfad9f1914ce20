import { and, eq, inArray, isNull, lt, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Database } from "../shared/db/client.ts";
import { idempotencyKeys, idempotencyWrites } from "../shared/db/schema.ts";
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
 * Proof that a key's write happened, for the write's own batch: `mark(ref)` inserts the key's row in
 * `idempotency_writes` (`ref`: the id of what the write made). Only one such row can exist per key, so of two writes
 * under one key only one batch commits; and since the mark commits with the write or not at all, a key whose answer
 * was never stored can be told apart: written (answer it from `ref`) or not (run it).
 */
export type WriteMark = (ref: string) => BatchItem<"sqlite">;

/** A write under an idempotency key, and how to answer for it once it is done. */
export interface OnceWrite<T> {
  /** Does the write; `mark(ref)` must go in the batch that writes it. */
  write(mark: WriteMark): Promise<{ status: number; body: T }>;
  /**
   * The answer to a write that committed but whose answer was not stored (its Worker or call object died in between):
   * finishes what the write does after its batch (caches dropped, a scheduler woken) and answers from `ref`.
   */
  answer(ref: string): Promise<{ status: number; body: T }>;
}

/**
 * How long a claim without an answer is taken as its write still running. Past it the claimant is taken for dead: a
 * retry claims the key again and runs the write. Safe whenever it is wrong, because only one write per key can
 * commit (`WriteMark`); it only decides how soon a retry after a crash is served rather than told to wait.
 */
export const CLAIM_LEASE_MS = 30_000;

/**
 * Runs a write once per (tenant, scope, key). The key is claimed first (an insert that only one request can win),
 * so concurrent requests with one key cannot both write: the others see the claim and get 409
 * `idempotency_in_progress`, or once the answer is stored, the answer. The same key with another body is 422
 * `idempotency_key_reused`. A write that fails before its batch commits releases the key (the engine's writes are
 * all-or-nothing batches, so it wrote nothing and a retry may run it); one that fails after is answered from its
 * mark. A claimant that died leaves a claim without an answer: a retry answers from its mark if its write committed,
 * and past CLAIM_LEASE_MS runs the write if it did not. `db` is the D1 binding (the call objects) or the request's
 * TenantScope (the routes).
 */
export async function runOnce<T>(
  db: D1Database | TenantScope,
  tenantId: string,
  scope: string,
  key: string,
  request: unknown,
  once: OnceWrite<T>,
): Promise<StoredAnswer<T>> {
  if (!IDEMPOTENCY_KEY.test(key))
    throw new BusinessError("invalid_idempotency_key", 400, "Idempotency-Key must be 1 to 200 printable characters without spaces");
  if (db instanceof TenantScope && db.tenantId !== tenantId) throw new Error("an idempotency key's scope must be its tenant's");
  const tenant = db instanceof TenantScope ? db : tenantScopeOn(db, tenantId);
  const requestHash = await sha256Hex(canonical(request));
  const claimedAt = Date.now();
  const claim = await tenant.insert(idempotencyKeys, { scope, key, requestHash, createdAt: claimedAt }).onConflictDoNothing().run();
  const mine = and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key));
  const written = async () => {
    const [row] = (await tenant.select(idempotencyWrites, eq(idempotencyWrites.scope, scope), eq(idempotencyWrites.key, key))) as Array<
      typeof idempotencyWrites.$inferSelect
    >;
    return row?.ref;
  };
  /** Answers a write that committed (`ref`) and stores the answer, for the retries after this one. */
  const answerFor = async (ref: string): Promise<StoredAnswer<T>> => {
    const answer = await once.answer(ref);
    await tenant.update(idempotencyKeys, storedAnswer(answer), mine, isNull(idempotencyKeys.responseStatus)).run();
    return { ...answer, replayed: true };
  };
  if (claim.meta.changes === 0) {
    const [row] = (await tenant.select(idempotencyKeys, mine)) as Array<typeof idempotencyKeys.$inferSelect>;
    if (!row) throw new BusinessError("idempotency_in_progress", 409, "A request with this Idempotency-Key just finished failing; retry");
    if (row.requestHash !== requestHash)
      throw new BusinessError("idempotency_key_reused", 422, "This Idempotency-Key was used with a different request");
    if (row.responseStatus !== null && row.responseBody !== null)
      return { status: row.responseStatus, body: JSON.parse(row.responseBody) as T, replayed: true };
    const ref = await written();
    if (ref !== undefined) return answerFor(ref);
    if (claimedAt - row.createdAt < CLAIM_LEASE_MS)
      throw new BusinessError("idempotency_in_progress", 409, "A request with this Idempotency-Key is still being processed; retry");
    // Its claimant is taken for dead before its write committed: the claim is this request's if no other retry took it first.
    const taken = await tenant
      .update(
        idempotencyKeys,
        { createdAt: claimedAt },
        mine,
        eq(idempotencyKeys.createdAt, row.createdAt),
        isNull(idempotencyKeys.responseStatus),
      )
      .run();
    if (taken.meta.changes === 0)
      throw new BusinessError("idempotency_in_progress", 409, "A request with this Idempotency-Key is still being processed; retry");
  }
  const mark: WriteMark = (ref) => tenant.insert(idempotencyWrites, { scope, key, ref, createdAt: claimedAt });
  let answer: { status: number; body: T };
  try {
    answer = await once.write(mark);
  } catch (error) {
    // A mark means the key's write committed: this one's, failing after its batch (a cache drop), or that of a
    // claimant taken for dead that was only slow, whose mark refused this batch. Either way it is answered, and the key
    // kept. A failed read of the mark leaves the write's own error to answer (the next retry finds the mark).
    const ref = await written().catch(() => undefined);
    if (ref !== undefined) return answerFor(ref);
    await tenant.delete(idempotencyKeys, mine, isNull(idempotencyKeys.responseStatus)).run();
    throw error;
  }
  await tenant.update(idempotencyKeys, storedAnswer(answer), mine).run();
  return { ...answer, replayed: false };
}

const storedAnswer = (answer: { status: number; body: unknown }) => ({
  responseStatus: answer.status,
  responseBody: JSON.stringify(answer.body),
});

/**
 * The cron's purge of keys past IDEMPOTENCY_RETENTION_MS, every tenant's (housekeeping by age, like expired
 * revocations: no tenant's data is read). Returns how many went.
 */
export async function purgeExpiredIdempotencyKeys(db: Database, now = Date.now()): Promise<number> {
  const cutoff = now - IDEMPOTENCY_RETENTION_MS;
  let purged = 0;
  // A key's write mark goes with it: a request with the key after that is a new request, its mark a new one.
  for (const table of [idempotencyKeys, idempotencyWrites]) {
    for (let batch = 0; batch < PURGE_BATCHES_PER_RUN; batch++) {
      const expired = db.select({ rowid: sql`rowid` }).from(table).where(lt(table.createdAt, cutoff)).limit(PURGE_BATCH);
      const { meta } = await db.delete(table).where(inArray(sql`rowid`, expired)).run();
      if (table === idempotencyKeys) purged += meta.changes;
      if (meta.changes < PURGE_BATCH) break;
    }
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
