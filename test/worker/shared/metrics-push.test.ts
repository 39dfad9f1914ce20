import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  METRICS_SHARDS,
  metrics,
  pushMetrics,
  pushWithinInterval,
  queueGauges,
  scrapeFleet,
} from "../../../workers/shared/observability/metrics.ts";
import { seriesKey } from "../../../workers/shared/observability/recorder.ts";

/**
 * How gauge reports reach the aggregator shards (workers/shared/observability/metrics.ts): queued per isolate and
 * sent with its next push, each to its source's shard; a shard keeps each source's newest report only; the isolate's
 * deltas ride with a report's RPC.
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

  it("the isolate's deltas ride with a session's report: one RPC, whichever shards they map to", async () => {
    // The shards each push reaches, by name, through the real namespace.
    const reached: string[][] = [];
    const namespace = env.METRICS;
    const counted = {
      METRICS: {
        idFromName: (name: string) => Object.assign(namespace.idFromName(name), { shardName: name }),
        get: (id: DurableObjectId & { shardName: string }) => ({
          push: (...args: Parameters<ReturnType<typeof namespace.get>["push"]>) => {
            reached.at(-1)!.push(id.shardName);
            return namespace.get(id).push(...args);
          },
        }),
      },
    } as unknown as Env;
    const pushReaching = async (gauges: Parameters<typeof pushMetrics>[1], deltas: "all" | "when-due") => {
      reached.push([]);
      await pushMetrics(counted, gauges, deltas);
      return reached.at(-1)!;
    };
    // Where the isolate's deltas go alone, then a session whose reports go to another shard.
    metrics.count("calls_total", { carrier: "twilio", direction: "inbound", outcome: "completed" });
    const [isolateShard] = await pushReaching(null, "all");
    let name = source("end");
    for (let tries = 0; tries < 50; tries++) {
      name = source("end");
      const [sessionShard] = await pushReaching({ source: name, values: [], ttlMs: TTL_MS }, "when-due");
      if (sessionShard !== isolateShard) break;
    }
    const counter = 'calls_total{carrier="twilio",direction="inbound",outcome="failed"}';
    const before = (await scrapeFleet(env)).counters[counter] ?? 0;
    metrics.count("calls_total", { carrier: "twilio", direction: "inbound", outcome: "failed" });
    // The end's push: its withdrawal and the deltas, one RPC to the session's shard.
    expect(await pushReaching({ source: name, values: [], ttlMs: TTL_MS }, "all")).toHaveLength(1);
    expect((await scrapeFleet(env)).counters[counter]).toBe(before + 1);
  });

  it("sessions that end within one push interval go in one push, once the interval since the last has passed", async () => {
    // A push now: the next is not due for the interval.
    await pushMetrics(env);
    const before = await fleetValue();
    const sources = [source("end-a"), source("end-b"), source("end-c")];
    const ended = sources.map((name) => {
      queueGauges({ source: name, values: [[KEY, 1]], ttlMs: TTL_MS });
      return pushWithinInterval(env);
    });
    // Not sent at once, one RPC each, as they end…
    expect(await fleetValue()).toBe(before);
    await Promise.all(ended);
    // …but together, once the interval was up.
    expect(await fleetValue()).toBe(before + 3);
    for (const name of sources) queueGauges({ source: name, values: [], ttlMs: TTL_MS });
    await pushMetrics(env, null, "when-due");
  });
});
