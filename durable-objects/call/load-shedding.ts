import { parseSettings } from "../../workers/shared/settings.ts";
import { isolateBehindMs } from "../media/isolate-lateness.ts";

/**
 * Load shedding: a new session is turned away while the isolate its object runs in reads its calls' audio too late
 * (media/isolate-lateness.ts). Past the thread's capacity the platform's own timeouts read the queue as the
 * providers' failure, fail the calls already up over and drop their audio (test/bench/FINDINGS.md, item 33); refusing
 * the next call instead spares them, when it comes before the thread is past its capacity (item 35). Short of that,
 * an isolate behind withholds its provider outcomes from the fleet's registry, which would read its lateness as
 * theirs (item 36).
 */

/** The failure reason (and the API's error code) of a session turned away because its isolate was overloaded. */
export const OVERLOADED = "overloaded";

/** Whether a session arriving at that lateness is shed (`CALL_SHEDDING_LATENESS_MS`; 0 turns shedding off). */
export function shedsAt(env: Env, latenessMs: number): boolean {
  const limit = parseSettings(env).values.CALL_SHEDDING_LATENESS_MS;
  return limit > 0 && latenessMs >= limit;
}

/**
 * An isolate this far behind withholds its provider outcomes (reporter.ts), well before it sheds: a reply's latency
 * counts the lateness about twice (the caller's audio on its way out, the answer on its way in), and a healthy
 * isolate reads its audio within tens of ms. Not a setting: what makes a figure the isolate's own, not the provider's.
 */
const OUTCOMES_WITHHELD_FROM_MS = 100;

/** How far behind the isolate is when that makes its provider outcomes its own, not the providers' (else 0). No yield. */
export function outcomesWithheldBy(): number {
  const behindMs = isolateBehindMs();
  return behindMs >= OUTCOMES_WITHHELD_FROM_MS ? behindMs : 0;
}
