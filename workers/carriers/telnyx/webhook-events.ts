import { z } from "zod";
import type { AnsweredBy } from "../../shared/db/schema.ts";
import type { CallSignal, CarrierEvent } from "../call-events.ts";

/** Telnyx Call Control webhooks (JSON envelope) → the internal CarrierEvent. */
const envelopeSchema = z.object({
  data: z.object({
    id: z.string().min(1).max(200),
    event_type: z.string().min(1).max(100),
    occurred_at: z.string().optional(),
    payload: z.looseObject({
      call_control_id: z.string().min(1).max(300),
      client_state: z.string().max(4096).nullish(),
      direction: z.string().optional(),
      from: z.string().optional(),
      to: z.string().optional(),
      hangup_cause: z.string().optional(),
      digit: z.string().optional(),
      result: z.string().optional(),
      failure_reason: z.string().optional(),
      recording_id: z.string().optional(),
    }),
  }),
});

// Telnyx hangup causes that mean the call never connected, mapped to the contract's failure reasons.
const UNANSWERED_CAUSES: Record<string, string> = {
  user_busy: "busy",
  no_answer: "no_answer",
  timeout: "no_answer",
  originator_cancel: "canceled",
  call_rejected: "rejected",
  not_found: "not_found",
};

/**
 * Answering-machine events' results → who answered, or that the machine's greeting ended (`beep_detected`, `ended`,
 * and `not_sure` too: Telnyx gave up listening, so the message goes now rather than never).
 */
const VERDICTS: Record<string, AnsweredBy> = {
  human: "human",
  human_residence: "human",
  human_business: "human",
  machine: "machine",
  fax_detected: "fax",
  not_sure: "unknown",
  silence: "unknown",
};
const MACHINE_RESULTS: Record<string, Record<string, { answeredBy: AnsweredBy | null; messageEnded: boolean }>> = {
  "call.machine.detection.ended": only(["human", "machine", "not_sure"]),
  "call.machine.premium.detection.ended": only(["human_residence", "human_business", "machine", "silence", "fax_detected", "not_sure"]),
  "call.machine.greeting.ended": greetingEnded(["beep_detected", "ended", "not_sure"]),
  "call.machine.premium.greeting.ended": greetingEnded(["beep_detected", "no_beep_detected"]),
};
function only(results: string[]) {
  return Object.fromEntries(results.map((result) => [result, { answeredBy: VERDICTS[result]!, messageEnded: false }]));
}
function greetingEnded(results: string[]) {
  return Object.fromEntries(results.map((result) => [result, { answeredBy: null, messageEnded: true }]));
}

function signalFor(eventType: string, payload: z.infer<typeof envelopeSchema>["data"]["payload"]): CallSignal {
  switch (eventType) {
    case "call.initiated":
      return { kind: "status", status: "initiated" };
    case "call.answered":
      return { kind: "status", status: "in_progress" };
    case "call.hangup": {
      const cause = payload.hangup_cause ?? "unspecified";
      return { kind: "hangup", cause: UNANSWERED_CAUSES[cause] ?? cause };
    }
    case "call.dtmf.received":
      return payload.digit && /^[0-9A-D*#]$/.test(payload.digit) ? { kind: "dtmf", digit: payload.digit } : { kind: "unhandled" };
    case "streaming.started":
      return { kind: "stream", state: "started" };
    case "streaming.stopped":
      return { kind: "stream", state: "stopped" };
    case "streaming.failed":
      return { kind: "stream", state: "failed", reason: payload.failure_reason };
    case "call.bridged":
      return { kind: "bridged" };
    case "call.speak.ended":
      return { kind: "spoken" };
    case "call.recording.saved":
      return { kind: "recording", state: "saved", recordingId: payload.recording_id };
    default: {
      const verdict = MACHINE_RESULTS[eventType]?.[payload.result ?? ""];
      return verdict && payload.result ? { kind: "machine_detection", ...verdict, result: payload.result } : { kind: "unhandled" };
    }
  }
}

/** client_state is base64 JSON we set on every command: `{"s": sessionId}`. */
export function encodeClientState(sessionId: string): string {
  return btoa(JSON.stringify({ s: sessionId }));
}

function sessionFromClientState(clientState: string | null | undefined): string | undefined {
  if (!clientState) return undefined;
  try {
    const parsed: unknown = JSON.parse(atob(clientState));
    return parsed && typeof parsed === "object" && "s" in parsed && typeof parsed.s === "string" ? parsed.s : undefined;
  } catch {
    return undefined;
  }
}

export type TelnyxParseResult = { ok: true; event: CarrierEvent } | { ok: false; problem: string };

export function telnyxEvent(body: unknown): TelnyxParseResult {
  const parsed = envelopeSchema.safeParse(body);
  if (!parsed.success) return { ok: false, problem: parsed.error.issues.map((i) => i.path.join(".")).join(", ") };
  const { id, event_type: eventType, occurred_at: occurredAt, payload } = parsed.data.data;
  // A machine-detection event must carry one of its documented results: anything else is malformed, not ignored.
  const results = MACHINE_RESULTS[eventType];
  if (results && !Object.hasOwn(results, payload.result ?? "")) return { ok: false, problem: "data.payload.result" };
  const occurred = occurredAt && !Number.isNaN(Date.parse(occurredAt)) ? Date.parse(occurredAt) : Date.now();
  return {
    ok: true,
    event: {
      carrier: "telnyx",
      carrierCallId: payload.call_control_id,
      name: eventType,
      signal: signalFor(eventType, payload),
      occurredAt: occurred,
      dedupeKey: `telnyx:${id}`,
      direction: payload.direction === undefined ? undefined : payload.direction === "incoming" ? "inbound" : "outbound",
      from: payload.from,
      to: payload.to,
      sessionHint: sessionFromClientState(payload.client_state),
    },
  };
}
