import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { METRICS_SHARDS, pushMetrics, queueGauges, scrapeFleet } from "../../../workers/shared/observability/metrics.ts";
import { seriesKey } from "../../../workers/shared/observability/recorder.ts";

/**
 * How gauge reports reach the aggregator shards (workers/shared/observability/metrics.ts): queued per isolate and
 * sent with its next push, each to its source's shard; a shard keeps each source's newest report only.
 */
const KEY = seriesKey("outbox_pending", { kind: "switches" });
const TTL_MS = 60_000;
const fleetValue = async () => (await scrapeFleet(env)).gauges[KEY] ?? 0;
const source = (name: string) => `session-${name}-${crypto.randomUUID()}`;

describe("gauge reports", () => {
  it("queued reports wait for the isolate's next push, then all go with it", async () => {
    const before = await fleetValue();
    const sources = [source("a"), source("b"), source("c")];
    for (const [i, name] of sources.entries()) queueGauges({ source: name, values: [[KEY, 2 ** i]], ttlMs: TTL_MS });
    expect(await fleetValue()).toBe(before);
    // One push carries every queued report (to each source's shard), deltas or not.
    await pushMetrics(env, null, "when-due");
    expect(await fleetValue()).toBe(before + 7);
    // Withdrawn: an empty report of each.
    for (const name of sources) queueGauges({ source: name, values: [], ttlMs: TTL_MS });
    await pushMetrics(env, null, "when-due");
    expect(await fleetValue()).toBe(before);
  });

  it("a shard never lets a source's older report replace its newer one, a withdrawal included", async () => {
    const name = source("late");
    const now = Date.now();
    const shards = Array.from({ length: METRICS_SHARDS }, (_, index) => env.METRICS.get(env.METRICS.idFromName(`metrics-shard-${index}`)));
    const before = await fleetValue();
    // Sent to every shard, so whichever the source maps to holds it.
    const push = (values: Array<[string, number]>, at: number) =>
      Promise.all(shards.map((shard) => shard.push(null, [{ source: name, values, ttlMs: TTL_MS, at }])));
    await push([[KEY, 5]], now);
    expect(await fleetValue()).toBe(before + 5 * METRICS_SHARDS);
    await push([], now + 10);
    expect(await fleetValue()).toBe(before);
    // A live report taken before the withdrawal, arriving after it: stale.
    await push([[KEY, 5]], now + 5);
    expect(await fleetValue()).toBe(before);
    await push([[KEY, 3]], now + 20);
    expect(await fleetValue()).toBe(before + 3 * METRICS_SHARDS);
    await push([], now + 30);
  });
});
