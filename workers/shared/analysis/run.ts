import { and, asc, eq, inArray, sql } from "drizzle-orm";
import { CompiledWrite } from "../db/compiled-write.ts";
import { sessionAnalysis, sessionEscalations, sessions, transcriptLines } from "../db/schema.ts";
import { tenantScopeFor } from "../db/tenant-scope.ts";
import { parseSettings } from "../settings.ts";
import { ANALYSIS_MODELS, AnalysisFailure, analysisEngineOf, runEngine } from "./engines.ts";
import { analyseLocally } from "./local-engine.ts";
import type { AnalysisLine, AnalysisResult } from "./result.ts";

/**
 * One attempt at a session's post-call analysis, from D1's transcript. The row is claimed by its attempt count, so the
 * session's object and the cron never run the same attempt twice; a failure is retried after ANALYSIS_BACKOFF_MS and,
 * after ANALYSIS_MAX_ATTEMPTS, left `failed` with its reason. Whoever calls this has decided the attempt is due.
 */

export const ANALYSIS_MAX_ATTEMPTS = 4;
/** The wait after the 1st, 2nd, 3rd failed attempt. */
export const ANALYSIS_BACKOFF_MS = [30_000, 2 * 60_000, 10 * 60_000];
/** An attempt's claim: past it (the attempt's worker died), the attempt may be made again. */
const CLAIM_MS = 2 * 60_000;
/** The most lines an engine reads (a session detail answers as many). */
const MAX_LINES = 2_000;

/** What a session's own object holds of it: its transcript (the latest lines it keeps) and why it escalated. */
export interface HeldConversation {
  lines: AnalysisLine[];
  escalations: Array<{ reason: string }>;
}

/** Attempt 1 claimed and completed in one statement; a row already there (claimed by anyone) is left alone. */
const insertReadyFirstAttempt = new CompiledWrite<"sessionId" | "result" | "at">((db, value, tenant) =>
  db
    .insert(sessionAnalysis)
    .values({
      sessionId: value("sessionId"),
      tenantId: tenant,
      status: "ready",
      attempts: 1,
      nextAttemptAt: value("at"),
      // Bound as the JSON text it is given (the column's encoder would encode it a second time).
      result: sql`${value("result")}`,
      engine: "local",
      model: ANALYSIS_MODELS.local,
      createdAt: value("at"),
      updatedAt: value("at"),
    })
    .onConflictDoNothing(),
);

/**
 * The first attempt by the session's own object when the engine is the offline one: from what the object holds, and
 * written claimed and ready in one D1 statement — no read, no claim round trip, no second write. It runs at every
 * session's end, beside the calls still live on the same isolate (test/bench/FINDINGS.md, item 19). False when the
 * statement found a row (the cron's claim, or an earlier attempt): the caller then makes a full attempt, which knows
 * what to do with it. A model engine always makes the full attempt: its claim must come before a slow, paid request.
 */
export async function analyseHeldLocally(
  env: Env,
  tenantId: string,
  sessionId: string,
  held: HeldConversation,
  now = Date.now(),
): Promise<boolean> {
  const result = agreeWithEscalations(analyseLocally(held.lines), held.escalations);
  const scope = tenantScopeFor(env, tenantId);
  const { meta } = await scope.bound(insertReadyFirstAttempt, { sessionId, result: JSON.stringify(result), at: now }).run();
  return meta.changes > 0;
}

export type AnalysisOutcome = { status: "pending"; nextAttemptAt: number } | { status: "ready" | "failed" } | { status: "unknown_session" };

export async function analyseSession(env: Env, tenantId: string, sessionId: string, now = Date.now()): Promise<AnalysisOutcome> {
  const scope = tenantScopeFor(env, tenantId);
  // One round trip reads all an attempt needs (it runs at every session's end, beside the calls still live). The
  // lines and escalations are final by now: the session has ended and its transcript is in D1 (its callers wait).
  const [[session], [row], lines, escalations] = await scope.batch([
    scope.selectFields(sessions, { id: sessions.id }, eq(sessions.id, sessionId)),
    scope.select(sessionAnalysis, eq(sessionAnalysis.sessionId, sessionId)),
    scope
      .selectFields(
        transcriptLines,
        { role: transcriptLines.role, text: transcriptLines.text, interrupted: transcriptLines.interrupted },
        and(eq(transcriptLines.sessionId, sessionId), inArray(transcriptLines.role, ["caller", "agent", "supervisor"])),
      )
      .orderBy(asc(transcriptLines.seq))
      .limit(MAX_LINES),
    scope.selectFields(sessionEscalations, { reason: sessionEscalations.reason }, eq(sessionEscalations.sessionId, sessionId)),
  ]);
  if (!session) return { status: "unknown_session" };
  if (row && row.status !== "pending") return { status: row.status };
  const attempt = (row?.attempts ?? 0) + 1;
  const claim = { attempts: attempt, nextAttemptAt: now + CLAIM_MS, updatedAt: now };
  // The attempt is claimed by its count: the first by creating the row, a later one by moving the count on.
  const claimed = row
    ? await scope
        .update(
          sessionAnalysis,
          claim,
          eq(sessionAnalysis.sessionId, sessionId),
          eq(sessionAnalysis.status, "pending"),
          eq(sessionAnalysis.attempts, row.attempts),
        )
        .returning({ attempts: sessionAnalysis.attempts })
    : await scope
        .insert(sessionAnalysis, { sessionId, status: "pending", createdAt: now, ...claim })
        .onConflictDoNothing()
        .returning({ attempts: sessionAnalysis.attempts });
  if (claimed.length === 0) return { status: "pending", nextAttemptAt: now + CLAIM_MS };
  const spentBefore = { input: row?.inputTokens ?? 0, output: row?.outputTokens ?? 0 };

  const settings = parseSettings(env).values;
  const engine = analysisEngineOf(settings);
  const mine = and(eq(sessionAnalysis.sessionId, sessionId), eq(sessionAnalysis.attempts, attempt));
  try {
    const answer = await runEngine(engine, settings, lines as AnalysisLine[]);
    await scope.update(
      sessionAnalysis,
      {
        status: "ready",
        result: agreeWithEscalations(answer.result, escalations),
        engine,
        model: answer.model,
        inputTokens: spentBefore.input + answer.tokens.input,
        outputTokens: spentBefore.output + answer.tokens.output,
        error: null,
        updatedAt: now,
      },
      mine,
    );
    return { status: "ready" };
  } catch (error) {
    // Only the engine's own failures have a reason worth keeping; anything else is ours, named by its kind only.
    const reason = error instanceof AnalysisFailure ? error.message : `internal error (${error instanceof Error ? error.name : "unknown"})`;
    const final = attempt >= ANALYSIS_MAX_ATTEMPTS;
    const nextAttemptAt = now + (ANALYSIS_BACKOFF_MS[attempt - 1] ?? ANALYSIS_BACKOFF_MS.at(-1)!);
    const spent = error instanceof AnalysisFailure ? error.tokens : { input: 0, output: 0 };
    await scope.update(
      sessionAnalysis,
      {
        status: final ? "failed" : "pending",
        engine,
        error: reason,
        nextAttemptAt,
        inputTokens: spentBefore.input + spent.input,
        outputTokens: spentBefore.output + spent.output,
        updatedAt: now,
      },
      mine,
    );
    return final ? { status: "failed" } : { status: "pending", nextAttemptAt };
  }
}

/**
 * A session escalated live (the tenant's rules fired) was one that needed a person, whatever the engine read: the
 * analysis says so, with the rules' reasons, rather than contradicting the record.
 */
function agreeWithEscalations(result: AnalysisResult, escalations: Array<{ reason: string }>): AnalysisResult {
  if (escalations.length === 0 || result.escalation.recommended) return result;
  const reason = `escalated during the call: ${escalations.map((escalation) => escalation.reason).join("; ")}`.slice(0, 300);
  return { ...result, escalation: { recommended: true, reason } };
}
