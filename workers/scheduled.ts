import { and, asc, eq, gte, inArray, isNotNull, isNull, lt, lte, min, or, sql } from "drizzle-orm";
import { purgeExpiredIdempotencyKeys } from "./business/idempotency.ts";
import { pokeScheduler } from "./business/reminders/scheduler-link.ts";
import { purgeExpiredRevocations } from "./identity/revocation.ts";
import { runSweep } from "./privacy/erasure-sweep.ts";
import { retainTenant } from "./privacy/retention.ts";
import { analyseSession } from "./shared/analysis/run.ts";
import { type Database, database } from "./shared/db/client.ts";
import {
  callReconcile,
  calls,
  erasureRequests,
  reminders,
  sessionAnalysis,
  sessions,
  tenantSettings,
  whatsappMessages,
} from "./shared/db/schema.ts";
import { tenantScopeFor } from "./shared/db/tenant-scope.ts";
import { errorType } from "./shared/errors.ts";
import { createLogger, type Logger } from "./shared/logger.ts";
import { callObject } from "./shared/session-ids.ts";
import { type AbandonedOutcome, tellAbandoned } from "./whatsapp/abandoned.ts";

/** A live call with no news for this long is asked about at its carrier (a lost final webhook, a crash). */
export const STUCK_CALL_AFTER_MS = 60 * 60 * 1000;
const RECONCILE_BATCH = 100;
/** Calls asked at once: a slow carrier or object holds one lane, not the whole run (a cron has 15 minutes). */
const RECONCILE_LANES = 10;
/** A call the cron could not settle waits this long before it is asked again (the last step repeats)… */
export const RECONCILE_BACKOFF_MS = [5 * 60_000, 15 * 60_000, 60 * 60_000, 6 * 60 * 60_000];
/** …for this many attempts (about four days); then it is marked given up and left for an operator. */
export const RECONCILE_MAX_ATTEMPTS = 20;
/** The cron's memory of a call that left the live set is kept this long, then purged (given-up marks stay). */
const RECONCILE_MEMORY_MS = 7 * 24 * 60 * 60_000;
const LIVE_STATUSES = ["initiated", "ringing", "in_progress", "on_hold", "transferring", "transferred"] as const;

/** Cron housekeeping (wrangler.toml `[triggers]`): each task runs on its own so one failure does not stop the rest. */
export async function runScheduled(controller: ScheduledController, env: Env): Promise<void> {
  const log = createLogger({ correlationId: `cron-${controller.scheduledTime}`, cron: controller.cron });
  const tasks: Record<string, () => Promise<unknown>> = {
    purgeExpiredRevocations: () => purgeExpiredRevocations(database(env.DB)),
    purgeExpiredIdempotencyKeys: () => purgeExpiredIdempotencyKeys(database(env.DB)),
    reconcileStuckCalls: () => reconcileStuckCalls(env, log),
    wakeReminderSchedulers: () => wakeReminderSchedulers(env),
    analyseEndedSessions: () => analyseEndedSessions(env, log),
    resumeErasures: () => resumeErasures(env, log),
    applyRetention: () => applyRetention(env, log),
    tellAbandonedWhatsApp: () => tellAbandonedWhatsApp(env, log),
  };
  for (const [name, task] of Object.entries(tasks)) {
    try {
      const result = await task();
      log.info("cron.task_done", { task: name, result: typeof result === "object" && result && "meta" in result ? undefined : result });
    } catch (error) {
      log.error("cron.task_failed", { task: name, error });
    }
  }
}

/** Tenants whose reminders are woken per run; the rest wait a run (each object's own alarm normally needs none). */
const REMINDER_WAKE_BATCH = 200;
/** The cron's period: a reminder due before the next run gets its object poked now. */
const CRON_PERIOD_MS = 5 * 60_000;

/**
 * The safety net under each tenant's reminder scheduler: a poke lost when a reminder was scheduled (the object
 * unreachable for a moment) would leave it unsent. Every tenant with a reminder due before the next run is poked;
 * a poke only re-arms the object's alarm, and sends are claimed in D1, so poking one already armed costs nothing.
 */
export async function wakeReminderSchedulers(env: Env, now = Date.now()): Promise<number> {
  // The most overdue first: in any other order the same 200 tenants could take every run, and one whose alarm was
  // lost behind them would never be woken.
  const tenants = await database(env.DB)
    .select({ tenantId: reminders.tenantId })
    .from(reminders)
    .where(and(inArray(reminders.state, ["pending", "sending"]), lte(reminders.nextAttemptAt, now + CRON_PERIOD_MS)))
    .groupBy(reminders.tenantId)
    .orderBy(min(reminders.nextAttemptAt))
    .limit(REMINDER_WAKE_BATCH);
  await Promise.all(tenants.map(({ tenantId }) => pokeScheduler(env, tenantId)));
  return tenants.length;
}

type Outcome = "terminal" | "live" | "finalized" | "unknown" | "error";
interface StuckCall {
  callId: string;
  tenantId: string;
  sessionId: string;
  attempts: number | null;
}

/**
 * Finds calls stuck in a live state across all tenants and lets each call's object settle it with its carrier.
 * Calls never asked come first, then the most overdue; a call that could not be settled is asked again after a
 * backoff and given up on after RECONCILE_MAX_ATTEMPTS, so calls that cannot be settled never starve the others.
 */
export async function reconcileStuckCalls(env: Env, log: Logger, now = Date.now()): Promise<Record<string, number>> {
  const db = database(env.DB);
  const stuck: StuckCall[] = await db
    .select({ callId: calls.id, tenantId: calls.tenantId, sessionId: calls.sessionId, attempts: callReconcile.attempts })
    .from(calls)
    .leftJoin(callReconcile, eq(callReconcile.callId, calls.id))
    .where(
      and(
        inArray(calls.status, [...LIVE_STATUSES]),
        lt(calls.updatedAt, now - STUCK_CALL_AFTER_MS),
        or(isNull(callReconcile.callId), lte(callReconcile.nextAttemptAt, now)),
      ),
    )
    .orderBy(sql`coalesce(${callReconcile.nextAttemptAt}, 0)`, asc(calls.updatedAt))
    .limit(RECONCILE_BATCH);
  const outcomes: Record<string, number> = {};
  const attempted: Array<{ call: StuckCall; outcome: Outcome }> = [];
  for (let i = 0; i < stuck.length; i += RECONCILE_LANES) {
    const lane = stuck.slice(i, i + RECONCILE_LANES);
    attempted.push(...(await Promise.all(lane.map(async (call) => ({ call, outcome: await askObject(env, call, log) })))));
  }
  for (const { outcome } of attempted) outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  outcomes.gaveUp = await remember(db, attempted, now, log);
  return outcomes;
}

async function askObject(env: Env, call: StuckCall, log: Logger): Promise<Outcome> {
  try {
    return await callObject(env, call.sessionId).reconcile();
  } catch (error) {
    log.warn("cron.reconcile_failed", { sessionId: call.sessionId, error });
    return "error";
  }
}

/**
 * Writes down every attempt in one batch: when to ask again, or that the cron has given up (marked, with the last
 * outcome). A call that settled leaves the live set when its object's sync lands, so its entry only ages out.
 */
async function remember(db: Database, attempted: Array<{ call: StuckCall; outcome: Outcome }>, now: number, log: Logger): Promise<number> {
  let gaveUp = 0;
  const writes = attempted.map(({ call, outcome }) => {
    const attempts = (call.attempts ?? 0) + 1;
    const givingUp = attempts >= RECONCILE_MAX_ATTEMPTS && outcome !== "terminal" && outcome !== "finalized";
    if (givingUp) {
      gaveUp += 1;
      log.warn("cron.reconcile_gave_up", { tenantId: call.tenantId, sessionId: call.sessionId, attempts, outcome });
    }
    const nextAttemptAt = givingUp ? null : now + RECONCILE_BACKOFF_MS[Math.min(attempts, RECONCILE_BACKOFF_MS.length) - 1]!;
    const row = { attempts, nextAttemptAt, outcome: givingUp ? `gave_up:${outcome}` : outcome, updatedAt: now };
    return db
      .insert(callReconcile)
      .values({ callId: call.callId, tenantId: call.tenantId, ...row })
      .onConflictDoUpdate({ target: callReconcile.callId, set: row });
  });
  const purge = db
    .delete(callReconcile)
    .where(and(lt(callReconcile.updatedAt, now - RECONCILE_MEMORY_MS), isNotNull(callReconcile.nextAttemptAt)));
  await db.batch([purge, ...writes]);
  return gaveUp;
}

/** Sessions whose analysis the cron takes on per run (each attempt may wait on a text model). */
const ANALYSIS_BATCH = 20;
/** How long a session's own object has to analyse it before the cron steps in. */
export const ANALYSIS_GRACE_MS = 10 * 60_000;
/** Sessions ended longer ago than this are not analysed by the cron (it never goes back through history). */
const ANALYSIS_HORIZON_MS = 7 * 24 * 60 * 60_000;

/**
 * The safety net under each session's own analysis (durable-objects/session/post-call-analysis.ts): an ended session
 * whose object never made it (evicted for good, its alarm lost) or whose retry is due, across all tenants. Attempts
 * are claimed in D1, so one the object is making at the same moment is not made twice.
 */
export async function analyseEndedSessions(env: Env, log: Logger, now = Date.now()): Promise<Record<string, number>> {
  const due = await database(env.DB)
    .select({ sessionId: sessions.id, tenantId: sessions.tenantId })
    .from(sessions)
    .leftJoin(sessionAnalysis, eq(sessionAnalysis.sessionId, sessions.id))
    .where(
      and(
        eq(sessions.status, "ended"),
        lt(sessions.endedAt, now - ANALYSIS_GRACE_MS),
        gte(sessions.endedAt, now - ANALYSIS_HORIZON_MS),
        // Retention deleted its transcript (and analysis): there is nothing to analyse, and nothing to keep.
        isNull(sessions.contentPurgedAt),
        or(isNull(sessionAnalysis.sessionId), and(eq(sessionAnalysis.status, "pending"), lte(sessionAnalysis.nextAttemptAt, now))),
      ),
    )
    .orderBy(asc(sessions.endedAt))
    .limit(ANALYSIS_BATCH);
  const outcomes: Record<string, number> = {};
  for (const session of due) {
    let status: string;
    try {
      status = (await analyseSession(env, session.tenantId, session.sessionId, now)).status;
    } catch (error) {
      log.warn("cron.analysis_failed", { sessionId: session.sessionId, error });
      status = "error";
    }
    outcomes[status] = (outcomes[status] ?? 0) + 1;
  }
  return outcomes;
}

/** Erasure sweeps resumed per run (each spends a bounded number of D1 batches). */
const ERASURES_PER_RUN = 10;

/**
 * Erasure sweeps still running (workers/privacy/erasure-sweep.ts), across tenants, least recently moved first: a
 * confirmation cut off midway, a sweep that ran out of its budget, or one waiting for a call to end.
 */
export async function resumeErasures(env: Env, log: Logger): Promise<Record<string, number>> {
  const due = await database(env.DB)
    .select({ id: erasureRequests.id, tenantId: erasureRequests.tenantId })
    .from(erasureRequests)
    .where(eq(erasureRequests.status, "sweeping"))
    .orderBy(asc(erasureRequests.updatedAt))
    .limit(ERASURES_PER_RUN);
  const outcomes: Record<string, number> = {};
  for (const request of due) {
    let outcome: string;
    try {
      outcome = await runSweep(env, request.tenantId, request.id);
    } catch (error) {
      log.warn("cron.erasure_failed", { requestId: request.id, error });
      outcome = "error";
    }
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  return outcomes;
}

/** Tenants given their retention turn per run; the others wait for the next run. */
const RETENTION_TENANTS_PER_RUN = 20;

/** Retention (workers/privacy/retention.ts) for the tenants that set `retentionDays`. */
export async function applyRetention(env: Env, log: Logger, now = Date.now()): Promise<{ tenants: number; sessions: number }> {
  const rows = await database(env.DB)
    .select({ tenantId: tenantSettings.tenantId, settings: tenantSettings.settings })
    .from(tenantSettings)
    .where(isNotNull(sql`json_extract(${tenantSettings.settings}, '$.retentionDays')`));
  const done = { tenants: 0, sessions: 0 };
  for (const row of rows) {
    if (done.tenants >= RETENTION_TENANTS_PER_RUN) break;
    const purged = await retainTenant(env, tenantScopeFor(env, row.tenantId), row.settings, log, now);
    if (purged === null) continue;
    done.tenants += 1;
    done.sessions += purged;
  }
  return done;
}

/** A WhatsApp message still `received` this long after it came lost its answer: `waitUntil` outlives a 200 by 30 s. */
export const WHATSAPP_ABANDONED_AFTER_MS = 5 * 60_000;
/** Senders told per run (each is a Cloud API send); the rest wait a run. */
const WHATSAPP_SENDERS_PER_RUN = 50;

/** Senders whose WhatsApp messages were recorded but never answered (workers/whatsapp/abandoned.ts), across tenants. */
export async function tellAbandonedWhatsApp(env: Env, log: Logger, now = Date.now()): Promise<Record<string, number>> {
  const cutoff = now - WHATSAPP_ABANDONED_AFTER_MS;
  const senders = await database(env.DB)
    .selectDistinct({ tenantId: whatsappMessages.tenantId, waId: whatsappMessages.waId })
    .from(whatsappMessages)
    .where(and(eq(whatsappMessages.status, "received"), lt(whatsappMessages.createdAt, cutoff), eq(whatsappMessages.direction, "inbound")))
    .limit(WHATSAPP_SENDERS_PER_RUN);
  const outcomes: Record<string, number> = {};
  for (const sender of senders) {
    let outcome: AbandonedOutcome | "error";
    try {
      outcome = await tellAbandoned(env, tenantScopeFor(env, sender.tenantId), sender.waId, cutoff, log, now);
    } catch (error) {
      log.warn("cron.whatsapp_abandoned_failed", {
        tenantId: sender.tenantId,
        errorType: errorType(error),
      });
      outcome = "error";
    }
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  return outcomes;
}
