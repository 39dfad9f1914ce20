import { emptyState, type MetricsState, mergeInto } from "./exposition.ts";
import { type GaugeReport, MetricsRecorder } from "./recorder.ts";

/**
 * The isolate's metrics: one recorder shared by the Worker's requests and every object living in the isolate, pushed
 * to the aggregator shards as batched deltas — every PUSH_INTERVAL_MS or PUSH_AFTER_CHANGES changes, whichever comes
 * first, by whoever is running then (a request's `waitUntil`, an object's timer), and by an object as it goes idle.
 */
export const metrics = new MetricsRecorder();

export const PUSH_INTERVAL_MS = 5_000;
const PUSH_AFTER_CHANGES = 500;
/**
 * Shards of the aggregator, picked by source. One shard takes a push per source every 5 s; a push is one RPC and a
 * few dozen SQLite upserts in one commit (well under a millisecond of the object's time), so one shard could take
 * several thousand live calls; four leave headroom past 10,000 while a scrape stays four small RPCs.
 */
export const METRICS_SHARDS = 4;

let lastPush = 0;
let isolateSource: string | null = null;

/** This isolate's name as a metrics source (made on first use: no randomness at module scope in Workers). */
export function isolateId(): string {
  isolateSource ??= `isolate-${crypto.randomUUID()}`;
  return isolateSource;
}

function shardOf(env: Env, source: string) {
  let hash = 0;
  for (let i = 0; i < source.length; i++) hash = (hash * 31 + source.charCodeAt(i)) | 0;
  const shard = Math.abs(hash) % METRICS_SHARDS;
  return env.METRICS.get(env.METRICS.idFromName(`metrics-shard-${shard}`));
}

/** Whether the isolate's deltas are due to go (the cadence); `pushMetrics` sends them. */
export const metricsDue = (now = Date.now()): boolean =>
  metrics.pending > 0 && (metrics.pending >= PUSH_AFTER_CHANGES || now - lastPush >= PUSH_INTERVAL_MS);

/**
 * Sends the isolate's deltas (and a source's gauges) to its shard. A failed push puts nothing back: the deltas are
 * lost (counted as lost in the log), never sent twice, so counters stay exact or low, never high. `deltas: "when-due"`
 * (a live session's gauge report) carries the deltas only when their cadence says so: the shard writes deltas to its
 * storage, gauges only to memory, and many sessions sharing an isolate would otherwise each carry a sliver of them.
 */
export async function pushMetrics(env: Env, gauges: GaugeReport | null = null, deltas: "all" | "when-due" = "all"): Promise<void> {
  const now = Date.now();
  const batch = deltas === "all" || metricsDue(now) ? metrics.take() : null;
  if (batch || deltas === "all") lastPush = now;
  if (!batch && !gauges) return;
  try {
    await shardOf(env, gauges?.source ?? isolateId()).push(batch, gauges);
  } catch (error) {
    console.warn(JSON.stringify({ level: "warn", event: "metrics.push_failed", error: String(error) }));
  }
}

/** Every shard's totals merged: what `/metrics` exposes. */
export async function scrapeFleet(env: Env): Promise<MetricsState> {
  const total = emptyState();
  const parts = await Promise.all(
    Array.from({ length: METRICS_SHARDS }, (_, shard) => env.METRICS.get(env.METRICS.idFromName(`metrics-shard-${shard}`)).scrape()),
  );
  for (const part of parts) mergeInto(total, part);
  return total;
}
