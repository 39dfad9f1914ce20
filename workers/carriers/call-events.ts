import type { AnsweredBy, CallStatus, Carrier } from "../shared/db/schema.ts";

/**
 * The one vocabulary carriers are translated into (one module per carrier does the translating), so the call's
 * object never sees Twilio's or Telnyx's JSON.
 */
export type CallSignal =
  | { kind: "status"; status: CallStatus; reason?: string }
  /** The carrier says the call ended; whether that is `completed` or `failed` depends on whether it was answered. */
  | { kind: "hangup"; cause: string; answered?: boolean }
  | { kind: "dtmf"; digit: string }
  | { kind: "stream"; state: "started" | "stopped" | "failed"; reason?: string }
  /**
   * The carrier's answering-machine detection: who answered (null when the event says only that a greeting ended)
   * and whether the machine's greeting has ended (its beep), `result` the carrier's own word.
   */
  | { kind: "machine_detection"; answeredBy: AnsweredBy | null; messageEnded: boolean; result: string }
  | { kind: "recording"; state: "saved"; recordingId?: string }
  | { kind: "bridged" }
  /** The carrier finished saying what it was asked to say (a turned-away call's busy message). */
  | { kind: "spoken" }
  | { kind: "unhandled" };

export interface CarrierEvent {
  carrier: Carrier;
  carrierCallId: string;
  /** The carrier's own name for what happened, kept for the call's history. */
  name: string;
  signal: CallSignal;
  /** Carrier ordering where it has one (Twilio SequenceNumber). */
  sequence?: number;
  occurredAt: number;
  /** Retries of the same delivery carry the same key (Twilio idempotency token, Telnyx event id). */
  dedupeKey: string;
  direction?: "inbound" | "outbound";
  from?: string;
  to?: string;
  /** A session id the carrier echoes back from us (Twilio URL query, Telnyx client_state): trusted once signed. */
  sessionHint?: string;
}
