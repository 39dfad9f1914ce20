import { and, inArray, lt } from "drizzle-orm";
import { purgeExpiredRevocations } from "./identity/revocation.ts";
import { database } from "./shared/db/client.ts";
import { calls } from "./shared/db/schema.ts";
import { createLogger, type Logger } from "./shared/logger.ts";
import { callObject } from "./shared/session-ids.ts";

/** A live call with no news for this long is asked about at its carrier (a lost final webhook, a crash). */
export const STUCK_CALL_AFTER_MS = 60 * 60 * 1000;
const RECONCILE_BATCH = 100;
const LIVE_STATUSES = ["initiated", "ringing", "in_progress", "on_hold", "transferring", "transferred"] as const;

/** Cron housekeeping (wrangler.toml `[triggers]`): each task runs on its own so one failure does not stop the rest. */
export async function runScheduled(controller: ScheduledController, env: Env): Promise<void> {
  const log = createLogger({ correlationId: `cron-${controller.scheduledTime}`, cron: controller.cron });
  const tasks: Record<string, () => Promise<unknown>> = {
    purgeExpiredRevocations: () => purgeExpiredRevocations(database(env.DB)),
    reconcileStuckCalls: () => reconcileStuckCalls(env, log),
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

/** Finds calls stuck in a live state across all tenants and lets each call's object settle it with its carrier. */
export async function reconcileStuckCalls(env: Env, log: Logger, now = Date.now()): Promise<Record<string, number>> {
  const stuck = await database(env.DB)
    .select({ sessionId: calls.sessionId })
    .from(calls)
    .where(and(inArray(calls.status, [...LIVE_STATUSES]), lt(calls.updatedAt, now - STUCK_CALL_AFTER_MS)))
    .limit(RECONCILE_BATCH);
  const outcomes: Record<string, number> = {};
  for (const { sessionId } of stuck) {
    try {
      const outcome = await callObject(env, sessionId).reconcile();
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    } catch (error) {
      outcomes.error = (outcomes.error ?? 0) + 1;
      log.warn("cron.reconcile_failed", { sessionId, error });
    }
  }
  return outcomes;
}
