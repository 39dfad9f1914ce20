import { nameOfKey } from "./recorder.ts";
import { SERIES, type SeriesName } from "./series.ts";

/** The fleet's metrics as the aggregator shards answer them, merged. */
export interface MetricsState {
  counters: Record<string, number>;
  histograms: Record<string, { buckets: number[]; sum: number; count: number }>;
  gauges: Record<string, number>;
}

export const emptyState = (): MetricsState => ({ counters: {}, histograms: {}, gauges: {} });

/** Adds one shard's answer into the merged state: counters and histograms add up, gauges by their series' rule. */
export function mergeInto(total: MetricsState, part: MetricsState): void {
  for (const [key, value] of Object.entries(part.counters)) total.counters[key] = (total.counters[key] ?? 0) + value;
  for (const [key, h] of Object.entries(part.histograms)) {
    const into = total.histograms[key] ?? { buckets: h.buckets.map(() => 0), sum: 0, count: 0 };
    total.histograms[key] = into;
    h.buckets.forEach((n, i) => {
      into.buckets[i] = (into.buckets[i] ?? 0) + n;
    });
    into.sum += h.sum;
    into.count += h.count;
  }
  for (const [key, value] of Object.entries(part.gauges)) {
    const spec = SERIES[nameOfKey(key)];
    const max = "aggregate" in spec && spec.aggregate === "max";
    total.gauges[key] = key in total.gauges ? (max ? Math.max(total.gauges[key]!, value) : total.gauges[key]! + value) : value;
  }
}

const withLabel = (key: string, suffix: string, extra?: string): string => {
  const brace = key.indexOf("{");
  const name = brace < 0 ? key : key.slice(0, brace);
  const labels = brace < 0 ? "" : key.slice(brace + 1, -1);
  const all = [labels, extra].filter(Boolean).join(",");
  return `${name}${suffix}${all ? `{${all}}` : ""}`;
};

/**
 * The Prometheus text exposition format (version 0.0.4). Written here rather than with prom-client: its registry is
 * one Node process's, while these values are merged across isolates and objects first, leaving only this rendering.
 */
export function renderExposition(state: MetricsState): string {
  const out: string[] = [];
  const keysOf = (record: Record<string, unknown>, name: SeriesName) =>
    Object.keys(record)
      .filter((key) => nameOfKey(key) === name)
      .sort();
  for (const [name, spec] of Object.entries(SERIES) as Array<[SeriesName, (typeof SERIES)[SeriesName]]>) {
    out.push(`# HELP ${name} ${spec.help}`, `# TYPE ${name} ${spec.kind}`);
    if (spec.kind === "counter") for (const key of keysOf(state.counters, name)) out.push(`${key} ${state.counters[key]}`);
    if (spec.kind === "gauge") for (const key of keysOf(state.gauges, name)) out.push(`${key} ${state.gauges[key]}`);
    if (spec.kind === "histogram") {
      for (const key of keysOf(state.histograms, name)) {
        const h = state.histograms[key]!;
        let cumulative = 0;
        spec.buckets.forEach((bound, i) => {
          cumulative += h.buckets[i] ?? 0;
          out.push(`${withLabel(key, "_bucket", `le="${bound}"`)} ${cumulative}`);
        });
        out.push(
          `${withLabel(key, "_bucket", 'le="+Inf"')} ${h.count}`,
          `${withLabel(key, "_sum")} ${h.sum}`,
          `${withLabel(key, "_count")} ${h.count}`,
        );
      }
    }
  }
  return `${out.join("\n")}\n`;
}
