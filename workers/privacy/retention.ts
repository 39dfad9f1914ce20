import { and, asc, eq, inArray, isNull, lt } from "drizzle-orm";
import { recordings, sessionAnalysis, sessions, transcriptLines } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import type { Logger } from "../shared/logger.ts";
import { TENANT_SETTINGS_DEFAULTS, tenantSettingsSchema } from "../shared/tenant-settings.ts";
import { deleteRecordings } from "./recording-objects.ts";

/**
 * Retention (tenant setting `retentionDays`): what was said in a session — its transcript, its analysis, its
 * recording — is deleted once the session ended more than that many days ago. The session's row stays (with
 * `content_purged_at` set, which also keeps the analysis cron from analysing it again); live sessions are never
 * touched. Run from the 5-minute cron (workers/scheduled.ts `applyRetention`), at most daily per tenant: a tenant whose backlog is cleared is marked in KV
 * for a day; one with more than a run's share is taken again by the next run, so a big tenant takes several.
 */
export const RETENTION_SESSIONS_PER_RUN = 50;
/** Sessions per D1 batch: their ids bind well under D1's 100 parameters. */
const SESSIONS_PER_BATCH = 25;
const DAY_MS = 24 * 60 * 60_000;
const doneTodayKey = (tenantId: string) => `retention-done:${tenantId}`;

/**
 * One tenant's turn in a retention run (its settings document as stored): the number of sessions purged, or null
 * when the tenant was left alone (no setting, done today, or a document that no longer parses — that deletes
 * nothing: keeping too long is recoverable, deleting too soon is not).
 */
export async function retainTenant(
  env: Env,
  scope: TenantScope,
  stored: Record<string, unknown>,
  log: Logger,
  now: number,
): Promise<number | null> {
  const parsed = tenantSettingsSchema.safeParse({ ...TENANT_SETTINGS_DEFAULTS, ...stored });
  if (!parsed.success) {
    log.warn("retention.settings_unreadable", { tenantId: scope.tenantId });
    return null;
  }
  const days = parsed.data.retentionDays;
  if (days === null) return null;
  // KV unreachable: the tenant is looked at again, which costs one query and deletes nothing twice.
  if (await env.CACHE.get(doneTodayKey(scope.tenantId)).catch(() => null)) return null;
  const count = await purgeTenant(env, scope, now - days * DAY_MS, now);
  if (count < RETENTION_SESSIONS_PER_RUN) {
    await env.CACHE.put(doneTodayKey(scope.tenantId), String(now), { expirationTtl: DAY_MS / 1000 }).catch(() => undefined);
  }
  return count;
}

/** One run's share of a tenant's sessions ended before `cutoff` and not yet purged, oldest first. */
async function purgeTenant(env: Env, scope: TenantScope, cutoff: number, now: number): Promise<number> {
  const due = await scope
    .selectFields(
      sessions,
      { id: sessions.id },
      eq(sessions.status, "ended"),
      // A session ended before the cutoff began before it too: the condition on created_at uses the tenant's index.
      lt(sessions.createdAt, cutoff),
      lt(sessions.endedAt, cutoff),
      isNull(sessions.contentPurgedAt),
    )
    .orderBy(asc(sessions.createdAt))
    .limit(RETENTION_SESSIONS_PER_RUN);
  for (let start = 0; start < due.length; start += SESSIONS_PER_BATCH) {
    const ids = due.slice(start, start + SESSIONS_PER_BATCH).map((row) => row.id);
    // The objects first: a run cut off here finds the sessions again (not yet marked) and deletes what is left.
    await Promise.all(ids.map((sessionId) => deleteRecordings(env, scope.tenantId, sessionId)));
    await scope.batch([
      scope.delete(transcriptLines, inArray(transcriptLines.sessionId, ids)),
      scope.delete(sessionAnalysis, inArray(sessionAnalysis.sessionId, ids)),
      scope.delete(recordings, inArray(recordings.sessionId, ids)),
      scope.update(sessions, { contentPurgedAt: now }, and(inArray(sessions.id, ids), eq(sessions.status, "ended"))),
    ]);
  }
  return due.length;
}
