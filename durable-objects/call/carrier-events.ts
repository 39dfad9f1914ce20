import type { CallSignal, CarrierEvent } from "../../workers/carriers/carrier.ts";
import type { CallStatus } from "../../workers/shared/db/schema.ts";
import type { CallLedger } from "./call-ledger.ts";
import { type CallRecord, DELIVERY_MEMORY_MS } from "./call-store.ts";
import type { Redaction } from "./redaction.ts";

export type EventOutcome = "applied" | "ignored" | "rejected" | "duplicate" | "unknown_call";

/** Applies a carrier event to the call and its storage (synchronously, so it commits as one); D1 is the caller's to flush. */
export function recordCarrierEvent(ledger: CallLedger, event: CarrierEvent, correlationId: string, redaction: Redaction): EventOutcome {
  const record = ledger.record;
  if (!record) {
    ledger.log(correlationId).warn("call.event_for_unknown_call", { carrier: event.carrier, carrierEvent: event.name });
    return "unknown_call";
  }
  // An ended call takes no carrier event after the delivery memory has passed: a replay that old is acknowledged
  // and changes nothing, even once its delivery is forgotten.
  if (record.endedAt !== null && Date.now() - record.endedAt > DELIVERY_MEMORY_MS) return "duplicate";
  if (!ledger.firstDelivery(event.dedupeKey)) return "duplicate";
  record.carrierCallId ??= event.carrierCallId;
  const carrierMeta = { carrierSequence: event.sequence ?? null, carrierTimestamp: event.occurredAt };
  const outOfOrder = event.sequence !== undefined && record.lastCarrierSequence !== null && event.sequence < record.lastCarrierSequence;
  if (event.sequence !== undefined && !outOfOrder) record.lastCarrierSequence = event.sequence;

  const target = outOfOrder ? null : targetOf(record, event.signal);
  const outcome = target
    ? ledger.transition(target.status, "carrier", event.name, target.reason, carrierMeta)
    : ledger.note("carrier", event.name, {
        from: record.status,
        to: null,
        outcome: outOfOrder ? "ignored" : "applied",
        detail: outOfOrder ? "out_of_order" : describe(event.signal, redaction),
        ...carrierMeta,
      });
  return outcome;
}

/** What a carrier signal asks of the state machine, if anything. */
function targetOf(record: CallRecord, signal: CallSignal): { status: CallStatus; reason?: string } | null {
  switch (signal.kind) {
    case "status":
      return { status: signal.status, reason: signal.reason };
    case "hangup":
      return record.answeredAt !== null || signal.answered
        ? { status: "completed", reason: signal.cause }
        : { status: "failed", reason: signal.cause };
    case "bridged":
      return record.status === "transferring" ? { status: "transferred" } : null;
    default:
      return null;
  }
}

function describe(signal: CallSignal, redaction: Redaction): string | null {
  switch (signal.kind) {
    case "dtmf":
      return redaction.digit(signal.digit);
    case "stream":
      return signal.reason ? `${signal.state}: ${signal.reason}` : signal.state;
    case "machine_detection":
      return signal.result;
    case "recording":
      return signal.recordingId ?? signal.state;
    default:
      return null;
  }
}
