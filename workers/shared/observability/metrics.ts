import { sleep } from "../sleep.ts";
import { emptyState, type MetricsState, mergeInto } from "./exposition.ts";
import { type GaugeReport, type MetricsBatch, MetricsRecorder } from "./recorder.ts";

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
/**
 * Gauge reports waiting for the isolate's next push, by source (a newer report replaces the older): many sessions
 * share an isolate, and a report each every few seconds was an RPC each; they now go together, one RPC per shard.
 */
const queuedGauges = new Map<string, GaugeReport>();

/** This isolate's name as a metrics source (made on first use: no randomness at module scope in Workers). */
export function isolateId(): string {
  isolateSource ??= `isolate-${crypto.randomUUID()}`;
  return isolateSource;
}

function shardIndex(source: string): number {
  let hash = 0;
  for (let i = 0; i < source.length; i++) hash = (hash * 31 + source.charCodeAt(i)) | 0;
  return Math.abs(hash) % METRICS_SHARDS;
}

const shard = (env: Env, index: number) => env.METRICS.get(env.METRICS.idFromName(`metrics-shard-${index}`));

/** Whether the isolate's deltas or queued gauge reports are due to go (the cadence); `pushMetrics` sends them. */
export const metricsDue = (now = Date.now()): boolean =>
  (metrics.pending > 0 || queuedGauges.size > 0) && (metrics.pending >= PUSH_AFTER_CHANGES || now - lastPush >= PUSH_INTERVAL_MS);

/** A source's gauges, to go with the isolate's next push (at most PUSH_INTERVAL_MS away while it is active). */
export function queueGauges(report: GaugeReport): void {
  queuedGauges.set(report.source, { ...report, at: report.at ?? Date.now() });
}

/**
 * Pushes what the isolate holds within PUSH_INTERVAL_MS: at once when a push is due, else once the interval since the
 * last push has passed, unless a push meanwhile (any session's, any request's) took it. Sessions that end together
 * leave one push, not one each: at 100 calls ten end a second, and each push is an RPC and a commit on its shard, on
 * the isolate the calls still streaming share. Its caller keeps its object alive for the wait (`waitUntil`).
 */
export async function pushWithinInterval(env: Env): Promise<void> {
  const wait = lastPush + PUSH_INTERVAL_MS - Date.now();
  if (wait > 0) await sleep(wait);
  if (metricsDue()) await pushMetrics(env);
}

/**
 * Sends the isolate's deltas and a source's gauges (`gauges`) or, without one, every queued gauge report, one RPC per
 * shard: each report to its source's (so a source's reports replace each other), the deltas with one of them. A
 * failed push puts nothing back: the deltas are lost (counted as lost in the log), never sent twice, so counters stay
 * exact or low, never high; a lost gauge report is replaced by the source's next, or expires. `deltas: "when-due"`
 * carries the deltas only when their cadence says so: the shard writes deltas to its storage, gauges only to memory.
 */
export async function pushMetrics(env: Env, gauges: GaugeReport | null = null, deltas: "all" | "when-due" = "all"): Promise<void> {
  const now = Date.now();
  const batch = deltas === "all" || metricsDue(now) ? metrics.take() : null;
  if (batch || deltas === "all") lastPush = now;
  const byShard = new Map<number, { batch: MetricsBatch | null; gauges: GaugeReport[] }>();
  const shardFor = (index: number) => {
    const entry = byShard.get(index) ?? { batch: null, gauges: [] };
    byShard.set(index, entry);
    return entry;
  };
  // A report given here goes alone (the queue waits for the cadence: an end of call is not a fan-out to every shard),
  // replacing its source's queued one; otherwise every queued report goes.
  if (gauges) queuedGauges.delete(gauges.source);
  const reports = gauges ? [{ ...gauges, at: gauges.at ?? now }] : [...queuedGauges.values()];
  if (!gauges) queuedGauges.clear();
  for (const report of reports) shardFor(shardIndex(report.source)).gauges.push(report);
  // Deltas add up on whichever shard takes them (the scrape sums every shard's): they ride with a report's RPC
  // when there is one, so a call's end is one RPC, not two; otherwise they go to the isolate's shard.
  if (batch) (byShard.values().next().value ?? shardFor(shardIndex(isolateId()))).batch = batch;
  await Promise.all(
    [...byShard].map(async ([index, push]) => {
      try {
        await shard(env, index).push(push.batch, push.gauges);
      } catch (error) {
        console.warn(JSON.stringify({ level: "warn", event: "metrics.push_failed", error: String(error) }));
      }
    }),
  );
}

/** Every shard's totals merged: what `/metrics` exposes. */
export async function scrapeFleet(env: Env): Promise<MetricsState> {
  const total = emptyState();
  const parts = await Promise.all(Array.from({ length: METRICS_SHARDS }, (_, index) => shard(env, index).scrape()));
  for (const part of parts) mergeInto(total, part);
  return total;
}
