import { DurableObject } from "cloudflare:workers";
import { emptyState, type MetricsState, mergeInto } from "../../workers/shared/observability/exposition.ts";
import type { GaugeReport, MetricsBatch } from "../../workers/shared/observability/recorder.ts";

/**
 * One shard of the fleet's metrics (workers/observability/metrics-client.ts picks the shard by source). Counter and
 * histogram deltas are added into totals kept in storage, so a restart never sends a counter backwards; gauges are
 * each source's latest report, kept in memory until the source's report expires (a source that vanished — an
 * evicted object, a dead isolate — stops counting), and re-sent by live sources within seconds after a restart.
 */
export class MetricsAggregator extends DurableObject<Env> {
  private readonly gauges = new Map<string, { values: GaugeReport["values"]; expiresAt: number }>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value REAL NOT NULL)");
    // One row per histogram bucket; bucket -1 holds the sum, -2 the count.
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS histograms (key TEXT NOT NULL, bucket INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (key, bucket))",
    );
  }

  /** Adds a batch of deltas and replaces the source's gauges, in one commit. */
  push(batch: MetricsBatch | null, gauges: GaugeReport | null): void {
    const sql = this.ctx.storage.sql;
    for (const [key, delta] of batch?.counters ?? []) {
      sql.exec(
        "INSERT INTO counters (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
        key,
        delta,
      );
    }
    for (const [key, buckets, sum, count] of batch?.histograms ?? []) {
      const add = (bucket: number, value: number) =>
        sql.exec(
          "INSERT INTO histograms (key, bucket, value) VALUES (?, ?, ?) ON CONFLICT (key, bucket) DO UPDATE SET value = value + excluded.value",
          key,
          bucket,
          value,
        );
      buckets.forEach((value, bucket) => {
        if (value > 0) add(bucket, value);
      });
      add(-1, sum);
      add(-2, count);
    }
    if (gauges) {
      if (gauges.values.length === 0) this.gauges.delete(gauges.source);
      else this.gauges.set(gauges.source, { values: gauges.values, expiresAt: Date.now() + gauges.ttlMs });
    }
  }

  /** This shard's totals, and the gauges of its live sources merged by each series' rule. */
  scrape(): MetricsState {
    const state = emptyState();
    const sql = this.ctx.storage.sql;
    for (const row of sql.exec<{ key: string; value: number }>("SELECT key, value FROM counters")) state.counters[row.key] = row.value;
    for (const row of sql.exec<{ key: string; bucket: number; value: number }>(
      "SELECT key, bucket, value FROM histograms ORDER BY key, bucket",
    )) {
      const h = state.histograms[row.key] ?? { buckets: [], sum: 0, count: 0 };
      state.histograms[row.key] = h;
      if (row.bucket === -1) h.sum = row.value;
      else if (row.bucket === -2) h.count = row.value;
      else h.buckets[row.bucket] = row.value;
    }
    for (const h of Object.values(state.histograms)) h.buckets = Array.from(h.buckets, (n) => n ?? 0);
    const now = Date.now();
    for (const [source, report] of this.gauges) {
      if (report.expiresAt <= now) {
        this.gauges.delete(source);
        continue;
      }
      mergeInto(state, { counters: {}, histograms: {}, gauges: Object.fromEntries(report.values) });
    }
    return state;
  }
}
