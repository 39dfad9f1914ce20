import { database } from "./db/client";
import { createLogger } from "./http/logger";
import { purgeExpiredRevocations } from "./identity/revocation";

/** Cron housekeeping (wrangler.toml `[triggers]`): each task runs on its own so one failure does not stop the rest. */
export async function runScheduled(controller: ScheduledController, env: Env): Promise<void> {
  const log = createLogger({ correlationId: `cron-${controller.scheduledTime}`, cron: controller.cron });
  const tasks: Record<string, () => Promise<unknown>> = {
    purgeExpiredRevocations: () => purgeExpiredRevocations(database(env.DB)),
  };
  for (const [name, task] of Object.entries(tasks)) {
    try {
      await task();
      log.info("cron.task_done", { task: name });
    } catch (error) {
      log.error("cron.task_failed", { task: name, error });
    }
  }
}
