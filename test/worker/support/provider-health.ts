import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { forgetQueuedHealthReports } from "../../../durable-objects/provider-health/reporter.ts";

/**
 * The fleet-wide provider health registry (one object, storage shared by every test in a file) hears of every refusal
 * and stall a test provokes; left alone, a provider refused in one test is "offline" or "unhealthy" for the next,
 * whose call would then fail over away from it. Call from `beforeEach` to start each test from a registry that
 * knows nothing, and from an isolate whose queue holds none of the last test's outcomes.
 */
export async function forgetProviderHealth(): Promise<void> {
  forgetQueuedHealthReports();
  const registry = env.PROVIDER_HEALTH.get(env.PROVIDER_HEALTH.idFromName("global"));
  await runInDurableObject(registry, async (_instance, state) => {
    state.storage.sql.exec("DELETE FROM health_outcomes");
    state.storage.sql.exec("DELETE FROM health_providers");
    await state.storage.deleteAlarm();
  });
}
