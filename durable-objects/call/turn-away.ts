import type { CarrierEvent, TurnAwayStep } from "../../workers/carriers/carrier.ts";
import { CONCURRENCY_LIMIT } from "../admission/admission-slot.ts";
import type { CallRecord } from "./call-store.ts";
import { OVERLOADED } from "./load-shedding.ts";
import { isTerminal } from "./state-machine.ts";

/**
 * A call turned away at its tenant's limit or shed while its isolate was overloaded: its record is the refusal
 * (failed, `concurrency_limit` or `overloaded`).
 */
export const turnedAway = (record: CallRecord) =>
  isTerminal(record.status) && (record.failureReason === CONCURRENCY_LIMIT || record.failureReason === OVERLOADED);

/** The step a carrier event asks of a turned-away call: speak once it is answered, hang up once it has been told. */
export function turnAwayStepAfter(record: CallRecord, event: CarrierEvent): TurnAwayStep | null {
  if (!turnedAway(record)) return null;
  if (event.signal.kind === "status" && event.signal.status === "in_progress") return "answered";
  return event.signal.kind === "spoken" ? "spoken" : null;
}

/**
 * A call answered only to be told it is turned away is hung up this long after the answer even if the carrier never
 * reports it answered or the message spoken (a lost webhook must not leave an answered call open until the caller
 * gives up; the message takes about five seconds).
 */
export const TURN_AWAY_HANGUP_AFTER_MS = 30_000;
/** Object storage key of that deadline (epoch ms), set with the answer and cleared by the hangup. */
export const TURN_AWAY_DEADLINE_KEY = "turn_away_hangup_at";
