import { parseSettings } from "../../workers/shared/settings.ts";

/**
 * Load shedding: a new session is turned away while the isolate its object runs in reads its calls' audio too late
 * (media/isolate-lateness.ts). Past the thread's capacity the platform's own timeouts read the queue as the
 * providers' failure, fail the calls already up over and drop their audio (test/bench/FINDINGS.md, item 33); refusing
 * the next call instead spares them, when it comes before the thread is past its capacity (item 35).
 */

/** The failure reason (and the API's error code) of a session turned away because its isolate was overloaded. */
export const OVERLOADED = "overloaded";

/** Whether a session arriving at that lateness is shed (`CALL_SHEDDING_LATENESS_MS`; 0 turns shedding off). */
export function shedsAt(env: Env, latenessMs: number): boolean {
  const limit = parseSettings(env).values.CALL_SHEDDING_LATENESS_MS;
  return limit > 0 && latenessMs >= limit;
}
