import { and, eq, gte, lt, type SQL, sql } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import {
  type CARRIERS,
  calls,
  type PROVIDER_NAMES,
  providerSwitches,
  sessionAnalysis,
  sessionEscalations,
  sessions,
} from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";

/** The buckets asked for: `[start, end)` cut into `intervalMs` slices from `start` (already aligned). */
export interface BucketWindow {
  start: number;
  end: number;
  intervalMs: number;
}

/**
 * The rows each query answers. The scope's builder is generic over its table, so drizzle cannot infer them; D1 gives
 * sums of booleans as numbers, and `bucket` is the index of the bucket in the window.
 */
export type CallRow = {
  bucket: number;
  provider: ProviderName;
  carrier: Carrier;
  calls: number;
  answered: number;
  failed: number;
  lasted: number;
  durationMs: number;
};
export type WebSessionRow = { bucket: number; provider: ProviderName; sessions: number };
export type CountRow = { bucket: number; count: number };
export type AverageRow = { bucket: number; average: number | null };
export type PercentileRow = { bucket: number; p95: number };
type ProviderName = (typeof PROVIDER_NAMES)[number];
type Carrier = (typeof CARRIERS)[number];

/**
 * The bucket an instant falls in, counted from the window's start. CAST because D1 may bind a JS number as REAL, and
 * REAL division would not give the bucket's index.
 */
const bucketOf = (column: SQLiteColumn, window: BucketWindow): SQL<number> =>
  sql<number>`cast((${column} - ${window.start}) / ${window.intervalMs} as integer)`;

const inWindow = (column: SQLiteColumn, window: BucketWindow) => and(gte(column, window.start), lt(column, window.end));

/** One row per bucket, session provider and carrier: the calls (carrier legs) created in it. */
export async function callRows(scope: TenantScope, window: BucketWindow): Promise<CallRow[]> {
  const bucket = bucketOf(calls.createdAt, window);
  // The session's provider (its current one: the one a switched call ended on), looked up by its primary key.
  const provider = sql<ProviderName>`(select ${sessions.provider} from ${sessions} where ${sessions.id} = ${calls.sessionId} and ${sessions.tenantId} = ${calls.tenantId})`;
  const answered = sql`${calls.answeredAt} is not null`;
  const lasted = sql`${calls.answeredAt} is not null and ${calls.endedAt} is not null`;
  return (await scope
    .selectFields(
      calls,
      {
        bucket,
        provider,
        carrier: calls.carrier,
        calls: sql<number>`count(*)`,
        answered: sql<number>`sum(${answered})`,
        failed: sql<number>`sum(${calls.status} = 'failed')`,
        lasted: sql<number>`sum(${lasted})`,
        durationMs: sql<number>`coalesce(sum(case when ${lasted} then ${calls.endedAt} - ${calls.answeredAt} end), 0)`,
      },
      inWindow(calls.createdAt, window),
    )
    .groupBy(bucket, provider, calls.carrier)) as CallRow[];
}

/** One row per bucket and provider: the web sessions created in it (a browser is their caller, no carrier). */
export async function webSessionRows(scope: TenantScope, window: BucketWindow): Promise<WebSessionRow[]> {
  const bucket = bucketOf(sessions.createdAt, window);
  return (await scope
    .selectFields(
      sessions,
      { bucket, provider: sessions.provider, sessions: sql<number>`count(*)` },
      eq(sessions.channel, "web"),
      inWindow(sessions.createdAt, window),
    )
    .groupBy(bucket, sessions.provider)) as WebSessionRow[];
}

/** Escalations by the bucket they fired in. */
export async function escalationRows(scope: TenantScope, window: BucketWindow): Promise<CountRow[]> {
  const bucket = bucketOf(sessionEscalations.at, window);
  return (await scope
    .selectFields(sessionEscalations, { bucket, count: sql<number>`count(*)` }, inWindow(sessionEscalations.at, window))
    .groupBy(bucket)) as CountRow[];
}

/** Provider switches that took effect, by the bucket they started in (a failed switch left the call where it was). */
export async function switchRows(scope: TenantScope, window: BucketWindow): Promise<CountRow[]> {
  const bucket = bucketOf(providerSwitches.startedAt, window);
  return (await scope
    .selectFields(
      providerSwitches,
      { bucket, count: sql<number>`count(*)` },
      eq(providerSwitches.outcome, "succeeded"),
      inWindow(providerSwitches.startedAt, window),
    )
    .groupBy(bucket)) as CountRow[];
}

/** The mean caller sentiment of the sessions created in each bucket whose analysis is ready (phone and web alike). */
export async function sentimentRows(scope: TenantScope, window: BucketWindow): Promise<AverageRow[]> {
  const bucket = bucketOf(sessions.createdAt, window);
  // Null for a session not (yet) analysed, which avg() skips.
  const score = sql`(select json_extract(${sessionAnalysis.result}, '$.sentiment.score') from ${sessionAnalysis}
    where ${sessionAnalysis.sessionId} = ${sessions.id} and ${sessionAnalysis.tenantId} = ${sessions.tenantId} and ${sessionAnalysis.status} = 'ready')`;
  return (await scope
    .selectFields(sessions, { bucket, average: sql<number | null>`avg(${score})` }, inWindow(sessions.createdAt, window))
    .groupBy(bucket)) as AverageRow[];
}

/**
 * The 95th percentile (nearest rank: the smallest value at or above 95 % of the bucket's turns) of the latency at the
 * caller's ear, per bucket of the reply's first audio. Window functions over a subquery are beyond the scope's
 * builder, so this one statement binds the tenant itself; the database ranks the turns, so no row of them is read.
 */
export async function earLatencyP95Rows(scope: TenantScope, window: BucketWindow): Promise<PercentileRow[]> {
  const statement = scope.d1.prepare(
    `select bucket, min(ear) as p95 from (
       select bucket, ear,
              row_number() over (partition by bucket order by ear) as rank,
              count(*) over (partition by bucket) as turns
       from (
         select cast((provider_first_audio_at - ?2) / ?3 as integer) as bucket,
                first_mark_heard_at - caller_stopped_at as ear
         from turn_timings
         where tenant_id = ?1 and provider_first_audio_at >= ?2 and provider_first_audio_at < ?4
           and caller_stopped_at is not null and first_mark_heard_at is not null
       )
     )
     where rank * 100 >= turns * 95
     group by bucket`,
  );
  const { results } = await statement.bind(scope.tenantId, window.start, window.intervalMs, window.end).all<PercentileRow>();
  return results;
}
