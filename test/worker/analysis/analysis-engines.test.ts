import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { analyseEndedSessions } from "../../../workers/scheduled.ts";
import { transcriptText } from "../../../workers/shared/analysis/engines.ts";
import { type AnalysisLine, analysisResultSchema } from "../../../workers/shared/analysis/result.ts";
import { ANALYSIS_MAX_ATTEMPTS, analyseHeldLocally, analyseSession } from "../../../workers/shared/analysis/run.ts";
import { database } from "../../../workers/shared/db/client.ts";
import { sessionAnalysis, sessions, transcriptLines } from "../../../workers/shared/db/schema.ts";
import { createLogger } from "../../../workers/shared/logger.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { modelRequests, scriptModel } from "../support/whatsapp.ts";

/**
 * The analysis engines against the simulated text models, one attempt at a time through the runner the session's
 * object and the cron call; the engine is the ANALYSIS_PROVIDER setting, read per attempt from the env it is given.
 * Sessions here are ended sessions already in D1, as a call's object leaves them.
 */

let tenantId: string;
let token: string;

beforeAll(async () => {
  tenantId = await createTenant("Analysis");
  token = (await userWithToken(tenantId, "viewer")).accessToken;
});

const withEngine = (engine: string) => ({ ...env, ANALYSIS_PROVIDER: engine }) as Env;

/** An ended session with its transcript in D1; `endedAgoMs` before now. */
async function endedSession(lines: AnalysisLine[], endedAgoMs = 30_000): Promise<string> {
  const id = crypto.randomUUID();
  const now = Date.now();
  const db = database(env.DB);
  await db.insert(sessions).values({
    id,
    tenantId,
    channel: "web",
    status: "ended",
    provider: "local",
    correlationId: `analysis-${id}`,
    createdAt: now - endedAgoMs - 60_000,
    endedAt: now - endedAgoMs,
  });
  await db.insert(transcriptLines).values(
    lines.map((line, seq) => ({
      id: `${id}:${seq}`,
      tenantId,
      sessionId: id,
      seq,
      ...line,
      provider: "local" as const,
      occurredAt: now - 60_000 + seq,
    })),
  );
  return id;
}

const analysisOf = async (sessionId: string, as = token) => api(`/api/v1/sessions/${sessionId}/analysis`, { token: as });

const conversation = (topic: string): AnalysisLine[] => [
  { role: "agent", text: "Hello, how can I help?", interrupted: false },
  { role: "caller", text: `My ${topic} never arrived and I am upset.`, interrupted: false },
  { role: "agent", text: `I am sorry. I will check the ${topic} now.`, interrupted: false },
];

const modelAnswer = {
  summary: "The caller's parcel was late; the agent promised to check.",
  sentiment: { score: -0.4, label: "negative" },
  insights: ["first contact about this parcel"],
  actionItems: ["agent checks the parcel"],
  topics: ["delivery"],
  escalation: { recommended: false, reason: null },
};

describe("text model engines", () => {
  it("openai: the Responses API with the analysis schema answers; the analysis is ready and its tokens counted", async () => {
    const lines = conversation("parcel");
    const sessionId = await endedSession(lines);
    await scriptModel(transcriptText(lines), modelAnswer, { input: 812, output: 95 });
    expect(await analyseSession(withEngine("openai"), tenantId, sessionId)).toEqual({ status: "ready" });
    const response = await analysisOf(sessionId);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: "ready",
      ...modelAnswer,
      model: "gpt-4o-mini",
      tokens: { input: 812, output: 95 },
    });
    const [request] = await modelRequests(transcriptText(lines));
    expect(request!.body).toMatchObject({
      model: "gpt-4o-mini",
      text: { format: { type: "json_schema", name: "call_analysis", strict: true } },
    });
  });

  it("gemini: generateContent with a response schema answers the same way", async () => {
    const lines = conversation("refund");
    const sessionId = await endedSession(lines);
    await scriptModel(transcriptText(lines), modelAnswer, { input: 700, output: 80 });
    expect(await analyseSession(withEngine("gemini"), tenantId, sessionId)).toEqual({ status: "ready" });
    expect(await (await analysisOf(sessionId)).json()).toMatchObject({
      status: "ready",
      summary: modelAnswer.summary,
      model: "gemini-2.0-flash",
      tokens: { input: 700, output: 80 },
    });
    const [request] = await modelRequests(transcriptText(lines));
    expect(request!.body).toMatchObject({ generationConfig: { responseMimeType: "application/json", responseSchema: { type: "OBJECT" } } });
  });

  it("a failing model is retried with growing waits, then the analysis is failed with the reason", async () => {
    // Nothing scripted for this transcript: the simulated model answers 503 every time.
    const sessionId = await endedSession(conversation("invoice"));
    const engine = withEngine("openai");
    const waits: number[] = [];
    for (let attempt = 1; attempt < ANALYSIS_MAX_ATTEMPTS; attempt++) {
      const now = 1_000_000 * attempt;
      const outcome = await analyseSession(engine, tenantId, sessionId, now);
      expect(outcome.status).toBe("pending");
      if (outcome.status === "pending") waits.push(outcome.nextAttemptAt - now);
      expect(await (await analysisOf(sessionId)).json()).toMatchObject({
        status: "pending",
        attempts: attempt,
        error: "openai answered 503",
      });
    }
    expect(waits).toEqual([...waits].sort((a, b) => a - b));
    expect(new Set(waits).size).toBe(waits.length);
    expect(await analyseSession(engine, tenantId, sessionId)).toEqual({ status: "failed" });
    expect(await (await analysisOf(sessionId)).json()).toMatchObject({
      status: "failed",
      attempts: ANALYSIS_MAX_ATTEMPTS,
      error: "openai answered 503",
      summary: null,
      sentiment: null,
    });
    // Settled: another run changes nothing.
    expect(await analyseSession(engine, tenantId, sessionId)).toEqual({ status: "failed" });
  });

  it("a model answer outside the schema is a failure, not a result", async () => {
    const lines = conversation("voucher");
    const sessionId = await endedSession(lines);
    await scriptModel(transcriptText(lines), { summary: "no sentiment here" }, { input: 300, output: 12 });
    expect(await analyseSession(withEngine("openai"), tenantId, sessionId)).toMatchObject({ status: "pending" });
    // Refused, the answer was paid for all the same: its tokens count.
    expect(await (await analysisOf(sessionId)).json()).toMatchObject({
      status: "pending",
      error: "openai answered outside the schema",
      tokens: { input: 300, output: 12 },
    });
  });
});

describe("the offline engine and the route", () => {
  it("is deterministic: the same transcript gives the same analysis", async () => {
    const lines: AnalysisLine[] = [
      { role: "caller", text: "The delivery was late again. This is not good.", interrupted: false },
      { role: "agent", text: "I am sorry about the delivery. I will send you a voucher.", interrupted: true },
      { role: "caller", text: "Please call me back tomorrow about the delivery.", interrupted: false },
    ];
    const [first, second] = [await endedSession(lines), await endedSession(lines)];
    for (const id of [first, second]) expect(await analyseSession(env, tenantId, id)).toEqual({ status: "ready" });
    const [a, b] = [await (await analysisOf(first)).json(), await (await analysisOf(second)).json()];
    expect(a).toEqual(b);
    expect(analysisResultSchema.parse(a)).toEqual({
      // late −1, "not good" −3: caller sentiment (−4) / (5 × 2); caller words 17 of 29
      summary: "The delivery was late again. I will send you a voucher. Please call me back tomorrow about the delivery.",
      sentiment: { score: -0.4, label: "negative" },
      insights: ["2 caller turns, 1 agent turns", "caller talk ratio 0.59", "1 agent replies interrupted"],
      actionItems: ["agent: I will send you a voucher.", "caller: Please call me back tomorrow about the delivery."],
      topics: ["delivery", "send", "voucher", "call", "tomorrow"],
      escalation: { recommended: false, reason: null },
    });
  });

  it("reads what a supervisor said in a takeover as part of the conversation", async () => {
    const id = await endedSession([
      { role: "caller", text: "I need my refund today.", interrupted: false },
      { role: "supervisor", text: "I will send the refund to your account today.", interrupted: false },
    ]);
    expect(await analyseSession(env, tenantId, id)).toEqual({ status: "ready" });
    const analysis = (await (await analysisOf(id)).json()) as { insights: string[]; actionItems: string[] };
    expect(analysis.insights[0]).toBe("1 caller turns, 0 agent turns, 1 supervisor turns");
    expect(analysis.actionItems).toContain("supervisor: I will send the refund to your account today.");
  });

  it("a session's own object writes its analysis from what it holds in one statement, the same as the runner's from D1", async () => {
    const lines = conversation("invoice");
    const [fromD1, fromObject] = [await endedSession(lines), await endedSession(lines)];
    expect(await analyseSession(env, tenantId, fromD1)).toEqual({ status: "ready" });
    const escalations = [{ reason: "caller asked for a person" }];
    expect(await analyseHeldLocally(env, tenantId, fromObject, { lines, escalations: [] })).toBe(true);
    const [expected, written] = [await (await analysisOf(fromD1)).json(), await (await analysisOf(fromObject)).json()];
    expect(written).toEqual(expected);
    expect(written).toMatchObject({ status: "ready", attempts: 1, model: "local-lexicon-v1" });

    // Its attempt never overwrites a row that is there already: a second try, or an attempt the cron has claimed.
    expect(await analyseHeldLocally(env, tenantId, fromObject, { lines: [], escalations })).toBe(false);
    expect(await (await analysisOf(fromObject)).json()).toEqual(written);
    const claimed = await endedSession(lines);
    const now = Date.now();
    await database(env.DB)
      .insert(sessionAnalysis)
      .values({
        sessionId: claimed,
        tenantId,
        status: "pending",
        attempts: 1,
        nextAttemptAt: now + 60_000,
        createdAt: now,
        updatedAt: now,
      });
    expect(await analyseHeldLocally(env, tenantId, claimed, { lines, escalations })).toBe(false);
    expect(await (await analysisOf(claimed)).json()).toMatchObject({ status: "pending", attempts: 1, summary: null });

    // What the object knows of its escalations is said as the runner says it.
    const escalated = await endedSession(lines);
    expect(await analyseHeldLocally(env, tenantId, escalated, { lines, escalations })).toBe(true);
    expect(await (await analysisOf(escalated)).json()).toMatchObject({
      escalation: { recommended: true, reason: "escalated during the call: caller asked for a person" },
    });
  });

  it("answers pending before any attempt, and 404 for an unknown session or another tenant's", async () => {
    const sessionId = await endedSession(conversation("order"));
    expect(await (await analysisOf(sessionId)).json()).toMatchObject({ status: "pending", attempts: 0, summary: null });
    const outsider = (await userWithToken(await createTenant("Elsewhere"), "admin")).accessToken;
    expect((await analysisOf(sessionId, outsider)).status).toBe(404);
    expect((await analysisOf(crypto.randomUUID())).status).toBe(404);
    expect(await analyseSession(env, "another-tenant", sessionId)).toEqual({ status: "unknown_session" });
  });

  it("the cron analyses an ended session its object never did, once it is past the object's grace", async () => {
    const sessionId = await endedSession(conversation("parcel tracking"), 11 * 60_000);
    const log = createLogger({ correlationId: "cron-analysis-test" });
    expect((await analyseEndedSessions(env, log)).ready).toBeGreaterThanOrEqual(1);
    expect(await (await analysisOf(sessionId)).json()).toMatchObject({ status: "ready", model: "local-lexicon-v1" });
  });
});
