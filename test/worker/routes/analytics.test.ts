import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { database } from "../../../workers/shared/db/client.ts";
import { calls, providerSwitches, sessionAnalysis, sessionEscalations, sessions, turnTimings } from "../../../workers/shared/db/schema.ts";
import { api, createTenant, errorOf, userWithToken } from "../support/identity.ts";

/**
 * Call analytics through the real Worker over rows seeded in the real D1 for two tenants: exact figures per hour and
 * per day bucket (empty buckets included), the p95 of the latency at the ear, tenant isolation, and every bad parameter.
 */
type Counts = { calls: number; answered: number; failed: number };
type Bucket = Counts & {
  start: string;
  avgDurationSec: number | null;
  p95EarLatencyMs: number | null;
  escalations: number;
  switches: number;
  sentimentAvg: number | null;
  webSessions: number;
  byProvider: Record<string, Counts & { webSessions: number }>;
  byCarrier: Record<string, Counts>;
};
type Answer = { from: string; to: string; interval: string; buckets: Bucket[] };

const H = 3_600_000;
const MIN = 60_000;
const T = Date.UTC(2031, 4, 1);
const iso = (ms: number) => new Date(ms).toISOString();
const db = () => database(env.DB);

let tenantA: string;
let tenantB: string;
let viewerA: string;
let adminB: string;

type Provider = (typeof sessions.$inferInsert)["provider"];

async function seedSession(tenantId: string, provider: Provider, createdAt: number, channel: "phone" | "web" = "phone") {
  const id = crypto.randomUUID();
  await db()
    .insert(sessions)
    .values({ id, tenantId, channel, status: "ended", provider, correlationId: `c-${id.slice(0, 8)}`, createdAt });
  return id;
}

async function seedCall(
  tenantId: string,
  sessionId: string,
  fields: {
    carrier: "twilio" | "telnyx";
    createdAt: number;
    status: (typeof calls.$inferInsert)["status"];
    answeredAt?: number;
    endedAt?: number;
  },
) {
  const id = crypto.randomUUID();
  await db()
    .insert(calls)
    .values({
      id,
      tenantId,
      sessionId,
      carrier: fields.carrier,
      carrierCallId: `CA${id.replace(/-/g, "")}`,
      direction: "inbound",
      fromNumber: "+15550001000",
      toNumber: "+15550002000",
      status: fields.status,
      answeredAt: fields.answeredAt ?? null,
      endedAt: fields.endedAt ?? null,
      createdAt: fields.createdAt,
      updatedAt: fields.createdAt,
    });
}

async function seedTurn(tenantId: string, sessionId: string, firstAudioAt: number, earMs: number | null) {
  await db()
    .insert(turnTimings)
    .values({
      id: `${sessionId}:${firstAudioAt}:item`,
      tenantId,
      sessionId,
      provider: "openai",
      itemId: "item",
      callerStoppedAt: firstAudioAt - 300,
      providerFirstAudioAt: firstAudioAt,
      firstFrameSentAt: firstAudioAt,
      // A web session's turn is never heard back (no marks): no ear latency, so it must not count.
      firstMarkHeardAt: earMs === null ? null : firstAudioAt - 300 + earMs,
    });
}

async function seedSwitch(tenantId: string, sessionId: string, startedAt: number, outcome: "succeeded" | "failed") {
  await db()
    .insert(providerSwitches)
    .values({
      id: crypto.randomUUID(),
      tenantId,
      sessionId,
      fromProvider: "openai",
      toProvider: "gemini",
      reason: "manual",
      outcome,
      error: outcome === "failed" ? "refused" : null,
      messagesCarried: 4,
      startedAt,
      durationMs: 200,
    });
}

async function seedAnalysis(tenantId: string, sessionId: string, status: "ready" | "pending" | "failed", score: number) {
  await db()
    .insert(sessionAnalysis)
    .values({
      sessionId,
      tenantId,
      status,
      nextAttemptAt: T,
      result: status === "ready" ? { sentiment: { score, label: "neutral" } } : null,
      createdAt: T,
      updatedAt: T,
    });
}

async function seedEscalation(tenantId: string, sessionId: string, rule: "keyword" | "sentiment", at: number) {
  await db().insert(sessionEscalations).values({ tenantId, sessionId, rule, reason: "asked for a human", at });
}

async function analytics(query: string, token = viewerA): Promise<Answer> {
  const response = await api(`/api/v1/analytics/calls${query}`, { token });
  expect(response.status, await response.clone().text()).toBe(200);
  return response.json();
}

beforeAll(async () => {
  tenantA = await createTenant("Analytics A");
  tenantB = await createTenant("Analytics B");
  viewerA = (await userWithToken(tenantA, "viewer")).accessToken;
  adminB = (await userWithToken(tenantB, "admin")).accessToken;

  // Bucket 0 [T, T+1h): three phone calls and a web session.
  const s1 = await seedSession(tenantA, "openai", T);
  await seedCall(tenantA, s1, { carrier: "twilio", createdAt: T, status: "completed", answeredAt: T + 1_000, endedAt: T + 61_000 });
  const s2 = await seedSession(tenantA, "gemini", T + 10 * MIN);
  await seedCall(tenantA, s2, { carrier: "telnyx", createdAt: T + 10 * MIN, status: "failed", endedAt: T + 10 * MIN + 5_000 });
  const s3 = await seedSession(tenantA, "openai", T + 20 * MIN);
  await seedCall(tenantA, s3, {
    carrier: "twilio",
    createdAt: T + 20 * MIN,
    status: "completed",
    answeredAt: T + 20 * MIN,
    endedAt: T + 20 * MIN + 120_000,
  });
  const w1 = await seedSession(tenantA, "gemini", T + 5 * MIN, "web");
  await seedEscalation(tenantA, s1, "keyword", T + 30 * MIN);
  await seedSwitch(tenantA, s2, T + 11 * MIN, "succeeded");
  await seedSwitch(tenantA, s2, T + 12 * MIN, "failed");
  await seedAnalysis(tenantA, s1, "ready", 0.5);
  await seedAnalysis(tenantA, s3, "ready", -0.1);
  await seedAnalysis(tenantA, w1, "pending", 0);
  await seedAnalysis(tenantA, s2, "failed", 0);
  // Twenty heard turns, 100..2000 ms at the ear: the nearest-rank p95 is the 19th, 1900 ms.
  for (let i = 1; i <= 20; i++) await seedTurn(tenantA, s1, T + i * 1_000, i * 100);
  await seedTurn(tenantA, w1, T + 50_000, null);

  // Bucket 1 [T+1h, T+2h): nothing. Bucket 2 [T+2h, T+3h): a call still in progress, one turn, two escalations.
  const s4 = await seedSession(tenantA, "deepgram", T + 2 * H + MIN);
  await seedCall(tenantA, s4, { carrier: "twilio", createdAt: T + 2 * H + MIN, status: "in_progress", answeredAt: T + 2 * H + MIN });
  await seedTurn(tenantA, s4, T + 2 * H + 2 * MIN, 700);
  await seedEscalation(tenantA, s4, "keyword", T + 2 * H + 3 * MIN);
  await seedEscalation(tenantA, s4, "sentiment", T + 2 * H + 4 * MIN);

  // Just outside [T, T+3h): never counted in the hourly window.
  const before = await seedSession(tenantA, "openai", T - 1);
  await seedCall(tenantA, before, { carrier: "twilio", createdAt: T - 1, status: "failed" });
  const after = await seedSession(tenantA, "openai", T + 3 * H);
  await seedCall(tenantA, after, { carrier: "telnyx", createdAt: T + 3 * H, status: "failed" });

  // Tenant B, inside the same window: none of it may show in A's figures, and A's none in B's.
  const b1 = await seedSession(tenantB, "local", T + MIN);
  await seedCall(tenantB, b1, { carrier: "telnyx", createdAt: T + MIN, status: "completed", answeredAt: T + MIN, endedAt: T + 2 * MIN });
  await seedSwitch(tenantB, b1, T + 2 * MIN, "succeeded");
  await seedEscalation(tenantB, b1, "keyword", T + 2 * MIN);
  await seedAnalysis(tenantB, b1, "ready", -1);
  await seedTurn(tenantB, b1, T + 90_000, 5_000);
});

describe("GET /api/v1/analytics/calls", () => {
  it("answers exact figures per hour, empty buckets included", async () => {
    const answer = await analytics(`?from=${iso(T)}&to=${iso(T + 3 * H)}&interval=hour`);
    expect(answer).toMatchObject({ from: iso(T), to: iso(T + 3 * H), interval: "hour" });
    expect(answer.buckets).toEqual([
      {
        start: iso(T),
        calls: 3,
        answered: 2,
        failed: 1,
        avgDurationSec: 90,
        p95EarLatencyMs: 1900,
        escalations: 1,
        switches: 1,
        sentimentAvg: 0.2,
        webSessions: 1,
        byProvider: {
          openai: { calls: 2, answered: 2, failed: 0, webSessions: 0 },
          gemini: { calls: 1, answered: 0, failed: 1, webSessions: 1 },
        },
        byCarrier: { twilio: { calls: 2, answered: 2, failed: 0 }, telnyx: { calls: 1, answered: 0, failed: 1 } },
      },
      {
        start: iso(T + H),
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
      },
      {
        start: iso(T + 2 * H),
        calls: 1,
        answered: 1,
        failed: 0,
        // Answered but not ended: no duration yet.
        avgDurationSec: null,
        p95EarLatencyMs: 700,
        escalations: 2,
        switches: 0,
        sentimentAvg: null,
        webSessions: 0,
        byProvider: { deepgram: { calls: 1, answered: 1, failed: 0, webSessions: 0 } },
        byCarrier: { twilio: { calls: 1, answered: 1, failed: 0 } },
      },
    ]);
  });

  it("answers per day, rounding from down to its day", async () => {
    const answer = await analytics(`?from=${iso(T + 30 * MIN)}&to=${iso(T + 2 * 24 * H)}&interval=day`);
    expect(answer.from).toBe(iso(T));
    expect(answer.buckets.map((bucket) => bucket.start)).toEqual([iso(T), iso(T + 24 * H)]);
    const [day, next] = answer.buckets;
    // The day holds the three hours above and the call at T+3h; the 21 heard turns' p95 is the 20th smallest, 1900 ms.
    expect(day).toMatchObject({
      calls: 5,
      answered: 3,
      failed: 2,
      avgDurationSec: 90,
      p95EarLatencyMs: 1900,
      escalations: 3,
      switches: 1,
      sentimentAvg: 0.2,
      webSessions: 1,
    });
    expect(day?.byCarrier).toEqual({ twilio: { calls: 3, answered: 3, failed: 0 }, telnyx: { calls: 2, answered: 0, failed: 2 } });
    expect(next).toMatchObject({ calls: 0, webSessions: 0, p95EarLatencyMs: null, byProvider: {} });
  });

  it("shows each tenant only its own figures", async () => {
    const answer = await analytics(`?from=${iso(T)}&to=${iso(T + H)}`, adminB);
    expect(answer.buckets).toEqual([
      {
        start: iso(T),
        calls: 1,
        answered: 1,
        failed: 0,
        avgDurationSec: 60,
        p95EarLatencyMs: 5000,
        escalations: 1,
        switches: 1,
        sentimentAvg: -1,
        webSessions: 0,
        byProvider: { local: { calls: 1, answered: 1, failed: 0, webSessions: 0 } },
        byCarrier: { telnyx: { calls: 1, answered: 1, failed: 0 } },
      },
    ]);
  });

  it("defaults to the last 24 hours by hour, every hour present", async () => {
    const answer = await analytics("");
    expect(answer.interval).toBe("hour");
    const span = Date.parse(answer.to) - Date.parse(answer.from);
    expect(span).toBeGreaterThanOrEqual(24 * H);
    expect(span).toBeLessThan(25 * H);
    expect(answer.buckets).toHaveLength(Math.ceil(span / H));
    answer.buckets.forEach((bucket, index) => {
      expect(bucket.start).toBe(iso(Date.parse(answer.from) + index * H));
    });
  });

  it("takes the widest ranges allowed and refuses wider ones with a clear code", async () => {
    expect((await analytics(`?from=${iso(T)}&to=${iso(T + 366 * 24 * H)}&interval=day`)).buckets).toHaveLength(366);
    expect((await analytics(`?from=${iso(T)}&to=${iso(T + 31 * 24 * H)}&interval=hour`)).buckets).toHaveLength(31 * 24);

    const tooManyHours = await api(`/api/v1/analytics/calls?from=${iso(T)}&to=${iso(T + 31 * 24 * H + 1)}&interval=hour`, {
      token: viewerA,
    });
    expect(tooManyHours.status).toBe(400);
    expect((await errorOf(tooManyHours)).code).toBe("range_too_large");
    const tooManyDays = await api(`/api/v1/analytics/calls?from=${iso(T)}&to=${iso(T + 367 * 24 * H)}&interval=day`, { token: viewerA });
    expect(tooManyDays.status).toBe(400);
    expect((await errorOf(tooManyDays)).code).toBe("range_too_large");
  });

  it("refuses a range that ends before it starts, and malformed parameters", async () => {
    const backwards = await api(`/api/v1/analytics/calls?from=${iso(T + H)}&to=${iso(T)}`, { token: viewerA });
    expect(backwards.status).toBe(400);
    expect((await errorOf(backwards)).code).toBe("invalid_range");
    const empty = await api(`/api/v1/analytics/calls?from=${iso(T)}&to=${iso(T)}`, { token: viewerA });
    expect((await errorOf(empty)).code).toBe("invalid_range");

    for (const query of ["interval=week", "from=yesterday", `to=${encodeURIComponent("2031-05-01 10:00")}`]) {
      const response = await api(`/api/v1/analytics/calls?${query}`, { token: viewerA });
      expect(response.status, query).toBe(400);
      expect((await errorOf(response)).code, query).toBe("validation_failed");
    }
  });

  it("accepts offsets in the instants and needs a credential", async () => {
    const answer = await analytics(
      `?from=${encodeURIComponent("2031-05-01T02:00:00+02:00")}&to=${encodeURIComponent("2031-05-01T01:00:00Z")}`,
    );
    expect(answer.buckets.map((bucket) => bucket.calls)).toEqual([3]);
    expect((await api("/api/v1/analytics/calls")).status).toBe(401);
  });
});
