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
  /** Each source's latest report; a withdrawn one (no values) is kept until it expires, so a late older one is stale. */
  private readonly gauges = new Map<string, { values: GaugeReport["values"]; expiresAt: number; at: number }>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value REAL NOT NULL)");
    // One row per histogram bucket; bucket -1 holds the sum, -2 the count.
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS histograms (key TEXT NOT NULL, bucket INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (key, bucket))",
    );
  }

  /**
   * Adds a batch of deltas and replaces each reporting source's gauges, in one commit. Each table takes its rows in one
   * statement (a JSON array expanded by `json_each`): a statement per row was dozens of SQLite calls per push.
   */
  push(batch: MetricsBatch | null, gauges: GaugeReport | GaugeReport[] | null): void {
    const sql = this.ctx.storage.sql;
    if (batch && batch.counters.length > 0) {
      sql.exec(
        `INSERT INTO counters (key, value)
         SELECT json_extract(row.value, '$[0]'), json_extract(row.value, '$[1]') FROM json_each(?) AS row WHERE true
         ON CONFLICT (key) DO UPDATE SET value = value + excluded.value`,
        JSON.stringify(batch.counters),
      );
    }
    const cells: Array<[key: string, bucket: number, value: number]> = [];
    for (const [key, buckets, sum, count] of batch?.histograms ?? []) {
      buckets.forEach((value, bucket) => {
        if (value > 0) cells.push([key, bucket, value]);
      });
      cells.push([key, -1, sum], [key, -2, count]);
    }
    if (cells.length > 0) {
      sql.exec(
        `INSERT INTO histograms (key, bucket, value)
         SELECT json_extract(row.value, '$[0]'), json_extract(row.value, '$[1]'), json_extract(row.value, '$[2]')
         FROM json_each(?) AS row WHERE true
         ON CONFLICT (key, bucket) DO UPDATE SET value = value + excluded.value`,
        JSON.stringify(cells),
      );
    }
    // One report (an isolate running the code before reports were queued) or an isolate's queued reports.
    for (const report of Array.isArray(gauges) ? gauges : gauges ? [gauges] : []) this.replaceGauges(report);
  }

  /**
   * Reports of one source can arrive out of order (an isolate's pushes run concurrently): an older one than the
   * source's last is ignored, so a live report sent before a session ended never revives its withdrawn gauges.
   */
  private replaceGauges(report: GaugeReport): void {
    const now = Date.now();
    const at = report.at ?? now;
    const held = this.gauges.get(report.source);
    if (held && held.expiresAt > now && held.at > at) return;
    this.gauges.set(report.source, { values: report.values, expiresAt: now + report.ttlMs, at });
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
      if (report.values.length === 0) continue;
      mergeInto(state, { counters: {}, histograms: {}, gauges: Object.fromEntries(report.values) });
    }
    return state;
  }
}
