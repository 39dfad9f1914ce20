import { analysisEngineOf } from "../../workers/shared/analysis/engines.ts";
import { type AnalysisOutcome, analyseHeldLocally, analyseSession, type HeldConversation } from "../../workers/shared/analysis/run.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import { parseSettings } from "../../workers/shared/settings.ts";
import type { SessionIdentity } from "./caller-channel.ts";

/**
 * The session's post-call analysis, run by its own object once it has ended (the fastest trigger: its alarm fires at
 * once); the cron sweeps what an object never finished (workers/scheduled.ts). Its one stored fact is when the next
 * attempt is due; the attempts themselves are claimed in D1 (workers/shared/analysis/run.ts). With the offline engine
 * the first attempt reads the transcript the object holds rather than D1's, and is one D1 write.
 */

const DUE_KEY = "analysis.due";
/**
 * The first attempt waits this long after the end: the call's last D1 sync (and its retries) go first, and an alarm
 * run at the very instant of the end would retry a failing sync early and push its backoff out.
 */
const FIRST_ATTEMPT_DELAY_MS = 2_000;
/** While the transcript's outbox still holds lines for D1, the analysis (which reads D1) waits this long. */
const TRANSCRIPT_WAIT_MS = 5_000;
/** D1 not knowing the session yet (its record still draining), or not answering at all: asked again after this. */
const RETRY_MS = 60_000;

export interface PostCallAnalysisDeps {
  env: Env;
  storage: SyncKvStorage;
  session: () => SessionIdentity | null;
  /** Transcript lines still waiting for D1. */
  transcriptPending: () => number;
  /** The transcript and escalations the object holds (read only when the offline engine analyses). */
  held: () => HeldConversation;
  wakeBy: (at: number) => Promise<void>;
  log: () => Logger;
}

export class PostCallAnalysis {
  constructor(private readonly deps: PostCallAnalysisDeps) {}

  /** The session has ended: its analysis is due now (once; an ended session ending again schedules nothing). */
  async schedule(): Promise<void> {
    if (this.deps.storage.get(DUE_KEY) !== undefined) return;
    const due = Date.now() + FIRST_ATTEMPT_DELAY_MS;
    this.deps.storage.put(DUE_KEY, due);
    await this.deps.wakeBy(due);
  }

  /** From the alarm: an attempt when one is due and the transcript is all in D1; otherwise the next wake. */
  async runIfDue(): Promise<void> {
    const due = this.deps.storage.get<number>(DUE_KEY);
    const session = this.deps.session();
    if (due === undefined || !session?.ended) return;
    const now = Date.now();
    if (now < due) return this.deps.wakeBy(due);
    if (this.deps.transcriptPending() > 0) return this.later(now + TRANSCRIPT_WAIT_MS);
    try {
      const outcome =
        (await this.heldAttempt(session, now)) ?? (await analyseSession(this.deps.env, session.tenantId, session.sessionId, now));
      if (outcome.status === "pending") return this.later(outcome.nextAttemptAt);
      if (outcome.status === "unknown_session") return this.later(now + RETRY_MS);
      this.deps.storage.delete(DUE_KEY);
      this.deps.log().info("analysis.done", { status: outcome.status });
    } catch (error) {
      this.deps.log().warn("analysis.attempt_failed", { error });
      await this.later(now + RETRY_MS);
    }
  }

  /** The offline engine's attempt from what the object holds; null when it does not apply or D1 had a row already. */
  private async heldAttempt(session: SessionIdentity, now: number): Promise<AnalysisOutcome | null> {
    if (analysisEngineOf(parseSettings(this.deps.env).values) !== "local") return null;
    const written = await analyseHeldLocally(this.deps.env, session.tenantId, session.sessionId, this.deps.held(), now);
    return written ? { status: "ready" } : null;
  }

  private async later(at: number): Promise<void> {
    this.deps.storage.put(DUE_KEY, at);
    await this.deps.wakeBy(at);
  }
}
