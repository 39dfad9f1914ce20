import type { CallStatus } from "../../workers/shared/db/schema.ts";

/**
 * The call state machine (contract: initiated → ringing → in_progress ⇄ on_hold → transferring → transferred,
 * ending in completed or failed). One table says which moves exist; carrier reports may additionally only move a
 * call forward, because carriers deliver callbacks late and out of order, while hold/resume come from our own API.
 */
const TRANSITIONS: Record<CallStatus, readonly CallStatus[]> = {
  initiated: ["ringing", "in_progress", "completed", "failed"],
  ringing: ["in_progress", "completed", "failed"],
  in_progress: ["on_hold", "transferring", "completed", "failed"],
  on_hold: ["in_progress", "transferring", "completed", "failed"],
  transferring: ["transferred", "in_progress", "completed", "failed"],
  transferred: ["completed", "failed"],
  completed: [],
  failed: [],
};

/** How far along a call is; carrier reports never lower it. */
const PROGRESS: Record<CallStatus, number> = {
  initiated: 0,
  ringing: 1,
  in_progress: 2,
  on_hold: 2,
  transferring: 3,
  transferred: 4,
  completed: 5,
  failed: 5,
};

export const isTerminal = (status: CallStatus) => TRANSITIONS[status].length === 0;

export type TransitionSource = "carrier" | "api" | "system";

export type TransitionVerdict =
  | { outcome: "applied"; from: CallStatus; to: CallStatus }
  | { outcome: "ignored"; from: CallStatus; to: CallStatus; why: "same_state" | "stale" | "terminal" }
  | { outcome: "rejected"; from: CallStatus; to: CallStatus; why: "not_allowed" };

export function decideTransition(from: CallStatus, to: CallStatus, source: TransitionSource): TransitionVerdict {
  if (from === to) return { outcome: "ignored", from, to, why: "same_state" };
  if (isTerminal(from)) return { outcome: "ignored", from, to, why: "terminal" };
  // Strictly forward: a late carrier report (e.g. Twilio's `answered` after our hold) must not undo hold or resume.
  if (source === "carrier" && PROGRESS[to] <= PROGRESS[from]) return { outcome: "ignored", from, to, why: "stale" };
  if (!TRANSITIONS[from].includes(to)) return { outcome: "rejected", from, to, why: "not_allowed" };
  return { outcome: "applied", from, to };
}
