import { z } from "@hono/zod-openapi";
import { jsonResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { CARRIERS, PROVIDER_NAMES } from "../shared/db/schema.ts";
import { badRequest } from "../shared/errors.ts";
import { bucketsOf } from "./analytics-buckets.ts";
import {
  type BucketWindow,
  callRows,
  earLatencyP95Rows,
  escalationRows,
  sentimentRows,
  switchRows,
  webSessionRows,
} from "./analytics-queries.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const INTERVALS = { hour: HOUR_MS, day: DAY_MS } as const;
/** The widest range one request may ask for, per interval: enough for a month by hour or a year by day, never years. */
const MAX_RANGE_MS = { hour: 31 * DAY_MS, day: 366 * DAY_MS } as const;
/** The range asked for when `from` is left out: a day by hour, thirty days by day. */
const DEFAULT_RANGE_MS = { hour: DAY_MS, day: 30 * DAY_MS } as const;

const query = z.object({
  from: z.iso.datetime({ offset: true }).optional().describe("start of the range (ISO 8601); rounded down to its bucket (UTC)"),
  to: z.iso.datetime({ offset: true }).optional().describe("end of the range, exclusive (ISO 8601); default now"),
  interval: z.enum(["hour", "day"]).default("hour").describe("bucket width; at most 31 days by hour, 366 by day"),
});

const counts = z.object({ calls: z.number().int(), answered: z.number().int(), failed: z.number().int() });
const providerCounts = counts.extend({ webSessions: z.number().int() });

const bucketSchema = z
  .object({
    start: z.string().describe("the bucket's first instant (ISO 8601, UTC)"),
    calls: z.number().int().describe("phone calls (carrier legs) created in the bucket; web sessions are counted apart"),
    answered: z.number().int().describe("of those, answered"),
    failed: z.number().int().describe("of those, failed (status `failed`)"),
    avgDurationSec: z.number().nullable().describe("mean answered-to-ended time of the answered calls that have ended"),
    p95EarLatencyMs: z.number().int().nullable().describe("95th percentile of the latency at the caller's ear, by turn"),
    escalations: z.number().int().describe("escalations that fired in the bucket"),
    switches: z.number().int().describe("provider switches that succeeded in the bucket"),
    sentimentAvg: z.number().nullable().describe("mean caller sentiment (-1..1) of the sessions created in the bucket and analysed"),
    webSessions: z.number().int().describe("web sessions created in the bucket"),
    byProvider: z.partialRecord(z.enum(PROVIDER_NAMES), providerCounts).describe("providers with a call or web session in the bucket"),
    byCarrier: z.partialRecord(z.enum(CARRIERS), counts).describe("carriers with a call in the bucket"),
  })
  .openapi("CallAnalyticsBucket");

const analyticsRoute = protectedRoute("sessions:read", {
  method: "get",
  path: "/api/v1/analytics/calls",
  tags: ["analytics"],
  summary: "The tenant's calls and sessions in time buckets, every bucket of the range present",
  request: { query },
  responses: {
    200: jsonResponse(
      z.object({ from: z.string(), to: z.string(), interval: z.enum(["hour", "day"]), buckets: z.array(bucketSchema) }),
      "One bucket per hour or day of the range, empty ones included",
    ),
  },
});

/** The window the query asks for, aligned to its interval, or a 400 that says what is wrong with it. */
function windowOf(params: z.infer<typeof query>, now: number): BucketWindow {
  const intervalMs = INTERVALS[params.interval];
  const end = params.to ? Date.parse(params.to) : now;
  const from = params.from ? Date.parse(params.from) : end - DEFAULT_RANGE_MS[params.interval];
  if (from >= end) throw badRequest("invalid_range", "from must be before to");
  if (end - from > MAX_RANGE_MS[params.interval]) {
    throw badRequest("range_too_large", `at most ${MAX_RANGE_MS[params.interval] / DAY_MS} days may be asked for by ${params.interval}`);
  }
  return { start: Math.floor(from / intervalMs) * intervalMs, end, intervalMs };
}

export const analyticsRoutes = publicRouter().openapi(analyticsRoute, async (c) => {
  const params = c.req.valid("query");
  const window = windowOf(params, Date.now());
  const scope = c.get("scope");
  const [callsIn, webIn, escalationsIn, switchesIn, sentimentIn, latencyIn] = await Promise.all([
    callRows(scope, window),
    webSessionRows(scope, window),
    escalationRows(scope, window),
    switchRows(scope, window),
    sentimentRows(scope, window),
    earLatencyP95Rows(scope, window),
  ]);

  const buckets = bucketsOf(window, {
    calls: callsIn,
    webSessions: webIn,
    escalations: escalationsIn,
    switches: switchesIn,
    sentiment: sentimentIn,
    earLatency: latencyIn,
  });

  return c.json(
    { from: new Date(window.start).toISOString(), to: new Date(window.end).toISOString(), interval: params.interval, buckets },
    200,
  );
});
