import type { AnsweredBy } from "../../shared/db/schema.ts";
import type { CallSignal, CarrierEvent } from "../call-events.ts";
import type { TwilioParams } from "./signature.ts";

/** Twilio voice and status callbacks (form fields) → the internal CarrierEvent. */
const STATUS: Record<string, CallSignal> = {
  queued: { kind: "status", status: "initiated" },
  initiated: { kind: "status", status: "initiated" },
  ringing: { kind: "status", status: "ringing" },
  "in-progress": { kind: "status", status: "in_progress" },
  completed: { kind: "hangup", cause: "completed", answered: true },
  busy: { kind: "status", status: "failed", reason: "busy" },
  "no-answer": { kind: "status", status: "failed", reason: "no_answer" },
  canceled: { kind: "status", status: "failed", reason: "canceled" },
  failed: { kind: "status", status: "failed", reason: "carrier_failure" },
};

const CALL_SID = /^CA[0-9a-fA-F]{32}$/;

const field = (params: TwilioParams, name: string): string | undefined => {
  const value = params[name];
  return Array.isArray(value) ? value[0] : value;
};

export type TwilioParseResult = { ok: true; event: CarrierEvent } | { ok: false; problem: string };

/** `signedDigest` names the delivery: what the signature covers (signature.ts `signedContentDigest`). */
export function twilioEvent(params: TwilioParams, signedDigest: string, sessionHint: string | undefined): TwilioParseResult {
  const callSid = field(params, "CallSid");
  const callStatus = field(params, "CallStatus");
  if (!callSid || !CALL_SID.test(callSid)) return { ok: false, problem: "CallSid missing or malformed" };
  if (!callStatus) return { ok: false, problem: "CallStatus missing" };
  const signal = STATUS[callStatus] ?? ({ kind: "unhandled" } as const);
  const sequenceText = field(params, "SequenceNumber");
  const sequence = sequenceText !== undefined && /^\d{1,9}$/.test(sequenceText) ? Number(sequenceText) : undefined;
  const timestamp = field(params, "Timestamp");
  const occurredAt = timestamp && !Number.isNaN(Date.parse(timestamp)) ? Date.parse(timestamp) : Date.now();
  const direction = field(params, "Direction");
  return {
    ok: true,
    event: {
      carrier: "twilio",
      carrierCallId: callSid,
      name: `twilio.${callStatus}`,
      signal,
      sequence,
      occurredAt,
      // The idempotency token is not signed: a replay could carry any. Retries and replays alike repeat what the
      // signature covers, so that names the delivery.
      dedupeKey: `twilio:${signedDigest}`,
      direction: direction === undefined ? undefined : direction === "inbound" ? "inbound" : "outbound",
      from: field(params, "From"),
      to: field(params, "To"),
      sessionHint,
    },
  };
}

/** `AnsweredBy` of an AsyncAmdStatusCallback → who answered, and whether the machine's greeting has ended. */
const ANSWERED_BY: Record<string, { answeredBy: AnsweredBy; messageEnded: boolean }> = {
  human: { answeredBy: "human", messageEnded: false },
  machine_start: { answeredBy: "machine", messageEnded: false },
  machine_end_beep: { answeredBy: "machine", messageEnded: true },
  machine_end_silence: { answeredBy: "machine", messageEnded: true },
  machine_end_other: { answeredBy: "machine", messageEnded: true },
  fax: { answeredBy: "fax", messageEnded: false },
  unknown: { answeredBy: "unknown", messageEnded: false },
};

/** Twilio's AsyncAmdStatusCallback (form fields `CallSid`, `AnsweredBy`, …; no `CallStatus`) → the internal CarrierEvent. */
export function twilioAmdEvent(params: TwilioParams, signedDigest: string, sessionHint: string | undefined): TwilioParseResult {
  const callSid = field(params, "CallSid");
  const answeredBy = field(params, "AnsweredBy");
  if (!callSid || !CALL_SID.test(callSid)) return { ok: false, problem: "CallSid missing or malformed" };
  const verdict = answeredBy === undefined ? undefined : ANSWERED_BY[answeredBy];
  if (!answeredBy || !verdict) return { ok: false, problem: "AnsweredBy missing or unknown" };
  return {
    ok: true,
    event: {
      carrier: "twilio",
      carrierCallId: callSid,
      name: `twilio.amd.${answeredBy}`,
      signal: { kind: "machine_detection", ...verdict, result: answeredBy },
      occurredAt: Date.now(),
      dedupeKey: `twilio:${signedDigest}`,
      sessionHint,
    },
  };
}
