import { and, asc, eq, inArray, isNotNull, isNull, lt, sql } from "drizzle-orm";
import { database } from "../shared/db/client.ts";
import { sessionAnalysis, sessions, tenantSettings, transcriptLines } from "../shared/db/schema.ts";
import { type TenantScope, tenantScopeFor } from "../shared/db/tenant-scope.ts";
import type { Logger } from "../shared/logger.ts";
import { TENANT_SETTINGS_DEFAULTS, tenantSettingsSchema } from "../shared/tenant-settings.ts";
import { deleteRecordings } from "./recording-objects.ts";

/**
 * Retention (tenant setting `retentionDays`): what was said in a session — its transcript, its analysis, its
 * recording — is deleted once the session ended more than that many days ago. The session's row stays (with
 * `content_purged_at` set, which also keeps the analysis cron from analysing it again); live sessions are never
 * touched. Run from the 5-minute cron, at most daily per tenant: a tenant whose backlog is cleared is marked in KV
 * for a day; one with more than a run's share is taken again by the next run, so a big tenant takes several.
 */
export const RETENTION_SESSIONS_PER_RUN = 50;
/** Tenants worked on per cron run; the others wait for the next run. */
const TENANTS_PER_RUN = 20;
/** Sessions per D1 batch: their ids bind well under D1's 100 parameters. */
const SESSIONS_PER_BATCH = 25;
const DAY_MS = 24 * 60 * 60_000;
const doneTodayKey = (tenantId: string) => `retention-done:${tenantId}`;

export async function applyRetention(env: Env, log: Logger, now = Date.now()): Promise<{ tenants: number; sessions: number }> {
  const rows = await database(env.DB)
    .select({ tenantId: tenantSettings.tenantId, settings: tenantSettings.settings })
    .from(tenantSettings)
    .where(isNotNull(sql`json_extract(${tenantSettings.settings}, '$.retentionDays')`));
  let tenants = 0;
  let purged = 0;
  for (const row of rows) {
    if (tenants >= TENANTS_PER_RUN) break;
    const parsed = tenantSettingsSchema.safeParse({ ...TENANT_SETTINGS_DEFAULTS, ...row.settings });
    if (!parsed.success) {
      // A document that no longer parses deletes nothing: keeping too long is recoverable, deleting too soon is not.
      log.warn("retention.settings_unreadable", { tenantId: row.tenantId });
      continue;
    }
    const days = parsed.data.retentionDays;
    if (days === null) continue;
    // KV unreachable: the tenant is looked at again, which costs one query and deletes nothing twice.
    if (await env.CACHE.get(doneTodayKey(row.tenantId)).catch(() => null)) continue;
    tenants += 1;
    const count = await purgeTenant(env, tenantScopeFor(env, row.tenantId), now - days * DAY_MS, now);
    purged += count;
    if (count < RETENTION_SESSIONS_PER_RUN) {
      await env.CACHE.put(doneTodayKey(row.tenantId), String(now), { expirationTtl: DAY_MS / 1000 }).catch(() => undefined);
    }
  }
  return { tenants, sessions: purged };
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
      scope.update(sessions, { contentPurgedAt: now }, and(inArray(sessions.id, ids), eq(sessions.status, "ended"))),
    ]);
  }
  return due.length;
}
