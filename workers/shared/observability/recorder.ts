import { type CounterName, type HistogramName, type LabelsOf, SERIES, type SeriesName } from "./series.ts";

/** What a recorder hands to the aggregator: counter and histogram deltas since the last hand-over. */
export interface MetricsBatch {
  counters: Array<[key: string, delta: number]>;
  /** Per-bucket (not cumulative) counts, one more than the series' bounds (the last is above every bound). */
  histograms: Array<[key: string, buckets: number[], sum: number, count: number]>;
}

/** A source's gauges as they stand (not deltas): they replace what the source said before, and expire with it. */
export interface GaugeReport {
  source: string;
  values: Array<[key: string, value: number]>;
  ttlMs: number;
  /** When the source took them (epoch ms): a report older than the one a shard holds is stale and ignored. */
  at?: number;
}

/** One histogram series, preallocated: observing is arithmetic on its buckets, with no lookup and no allocation. */
export class HistogramCell {
  buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.buckets = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    let i = 0;
    while (i < this.bounds.length && seconds > this.bounds[i]!) i++;
    this.buckets[i]! += 1;
    this.sum += seconds;
    this.count += 1;
  }
}

const MAX_LABEL_VALUE = 80;
/** The exposition format's escapes for a label value. */
const escapeLabel = (value: string) =>
  (value.length > MAX_LABEL_VALUE ? value.slice(0, MAX_LABEL_VALUE) : value)
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\n/g, "\\n");

/** `name{k="v",…}`: the series key everything is counted under (and exposed as). */
export function seriesKey(name: SeriesName, labels: Record<string, string>): string {
  const keys = SERIES[name].labels;
  if (keys.length === 0) return name;
  return `${name}{${keys.map((key) => `${key}="${escapeLabel(labels[key] ?? "")}"`).join(",")}}`;
}

/** The series name of a key. */
export const nameOfKey = (key: string): SeriesName => (key.includes("{") ? key.slice(0, key.indexOf("{")) : key) as SeriesName;

/**
 * This isolate's counters and histograms since they were last handed to the aggregator. Counting is a Map update
 * (never I/O); the per-frame path uses preallocated `HistogramCell`s from `histogram()` instead.
 */
export class MetricsRecorder {
  private readonly counters = new Map<string, number>();
  private readonly histograms = new Map<string, HistogramCell>();
  /** Changes since the last `take`: the push cadence counts them. */
  pending = 0;

  count<N extends CounterName>(name: N, labels: LabelsOf<N>, by = 1): void {
    if (!(by > 0)) return;
    const key = seriesKey(name, labels);
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
    this.pending++;
  }

  observe<N extends HistogramName>(name: N, labels: LabelsOf<N>, seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    this.histogram(name, labels).observe(seconds);
    this.pending++;
  }

  /** The cell of one histogram series, kept across hand-overs (a hot path holds it and observes directly). */
  histogram<N extends HistogramName>(name: N, labels: LabelsOf<N>): HistogramCell {
    const key = seriesKey(name, labels);
    let cell = this.histograms.get(key);
    if (!cell) {
      cell = new HistogramCell(SERIES[name].buckets);
      this.histograms.set(key, cell);
    }
    return cell;
  }

  /** Everything counted since the last call (null when nothing was), and the slate wiped. */
  take(): MetricsBatch | null {
    const counters = [...this.counters];
    this.counters.clear();
    const histograms: MetricsBatch["histograms"] = [];
    for (const [key, cell] of this.histograms) {
      if (cell.count === 0) continue;
      histograms.push([key, Array.from(cell.buckets), cell.sum, cell.count]);
      cell.buckets.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
    this.pending = 0;
    return counters.length + histograms.length > 0 ? { counters, histograms } : null;
  }
}
