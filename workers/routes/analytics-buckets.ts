import type { AverageRow, BucketWindow, CallRow, CountRow, PercentileRow, WebSessionRow } from "./analytics-queries.ts";

type Counts = { calls: number; answered: number; failed: number };
type ProviderCounts = Counts & { webSessions: number };

/** One bucket of `GET /api/v1/analytics/calls` (its schema is the route's). */
export interface AnalyticsBucket extends Counts {
  start: string;
  avgDurationSec: number | null;
  p95EarLatencyMs: number | null;
  escalations: number;
  switches: number;
  sentimentAvg: number | null;
  webSessions: number;
  byProvider: Partial<Record<CallRow["provider"], ProviderCounts>>;
  byCarrier: Partial<Record<CallRow["carrier"], Counts>>;
}

/** What the aggregate queries answered for one window. */
export interface AnalyticsRows {
  calls: CallRow[];
  webSessions: WebSessionRow[];
  escalations: CountRow[];
  switches: CountRow[];
  sentiment: AverageRow[];
  earLatency: PercentileRow[];
}

const rounded = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

function emptyBucket(at: number): AnalyticsBucket {
  return {
    start: new Date(at).toISOString(),
    calls: 0,
    answered: 0,
    failed: 0,
    avgDurationSec: null,
    p95EarLatencyMs: null,
    escalations: 0,
    switches: 0,
    sentimentAvg: null,
    webSessions: 0,
    byProvider: {},
    byCarrier: {},
  };
}

function add(into: Counts, row: CallRow) {
  into.calls += row.calls;
  into.answered += row.answered;
  into.failed += row.failed;
}

function providerCounts(bucket: AnalyticsBucket, provider: CallRow["provider"]): ProviderCounts {
  const counts = bucket.byProvider[provider] ?? { calls: 0, answered: 0, failed: 0, webSessions: 0 };
  bucket.byProvider[provider] = counts;
  return counts;
}

function carrierCounts(bucket: AnalyticsBucket, carrier: CallRow["carrier"]): Counts {
  const counts = bucket.byCarrier[carrier] ?? { calls: 0, answered: 0, failed: 0 };
  bucket.byCarrier[carrier] = counts;
  return counts;
}

/**
 * Every bucket of the window, in order, with the rows folded in. The queries group by bucket index, so a row lands in
 * its bucket directly; the calls' rows are per provider and carrier too, so they are summed into the bucket's totals.
 */
export function bucketsOf(window: BucketWindow, rows: AnalyticsRows): AnalyticsBucket[] {
  const buckets: AnalyticsBucket[] = [];
  for (let at = window.start; at < window.end; at += window.intervalMs) buckets.push(emptyBucket(at));
  const durations = buckets.map(() => ({ lasted: 0, totalMs: 0 }));

  for (const row of rows.calls) {
    const bucket = buckets[row.bucket];
    const duration = durations[row.bucket];
    if (!bucket || !duration) continue;
    add(bucket, row);
    add(providerCounts(bucket, row.provider), row);
    add(carrierCounts(bucket, row.carrier), row);
    duration.lasted += row.lasted;
    duration.totalMs += row.durationMs;
  }
  buckets.forEach((bucket, index) => {
    const duration = durations[index];
    if (duration?.lasted) bucket.avgDurationSec = rounded(duration.totalMs / duration.lasted / 1000, 1);
  });
  for (const row of rows.webSessions) {
    const bucket = buckets[row.bucket];
    if (!bucket) continue;
    bucket.webSessions += row.sessions;
    providerCounts(bucket, row.provider).webSessions += row.sessions;
  }
  for (const row of rows.escalations) {
    const bucket = buckets[row.bucket];
    if (bucket) bucket.escalations = row.count;
  }
  for (const row of rows.switches) {
    const bucket = buckets[row.bucket];
    if (bucket) bucket.switches = row.count;
  }
  for (const row of rows.sentiment) {
    const bucket = buckets[row.bucket];
    if (bucket && row.average !== null) bucket.sentimentAvg = rounded(row.average, 3);
  }
  for (const row of rows.earLatency) {
    const bucket = buckets[row.bucket];
    if (bucket) bucket.p95EarLatencyMs = row.p95;
  }
  return buckets;
}
