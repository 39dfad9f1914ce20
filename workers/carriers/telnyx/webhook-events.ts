import { z } from "zod";
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
    default:
      return eventType.startsWith("call.machine.") && payload.result
        ? { kind: "machine_detection", result: payload.result }
        : { kind: "unhandled" };
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
