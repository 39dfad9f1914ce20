import { CarrierApiError } from "../../workers/carriers/carrier-api-error.ts";
import type { PromptRef } from "../../workers/shared/db/prompts.ts";
import type { CallStatus, Carrier, MachineDetectionMode, RecordingMode } from "../../workers/shared/db/schema.ts";
import { reasonOf } from "../../workers/shared/errors.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import { newMachineDetection } from "./answering-machine.ts";
import type { CallLedger } from "./call-ledger.ts";
import type { CarrierLink } from "./carrier-link.ts";
import { isTerminal } from "./state-machine.ts";

/** What the API asks of a call: place it, control it, or (cron) settle it with its carrier. */
export interface PlaceCallInput {
  sessionId: string;
  tenantId: string;
  correlationId: string;
  to: string;
  provider: ProviderName;
  instructions: string | null;
  prompt: PromptRef | null;
  codec: "PCMU" | "PCMA";
  /** Carriers to try in order, each with the caller id to present on it. */
  candidates: Array<{ carrier: Carrier; from: string }>;
  /** Answering-machine detection asked for the call (with the voicemail message, in that mode), or null. */
  machineDetection: { mode: MachineDetectionMode; message: string | null } | null;
  /** The calling number's own recording setting (null: the tenant's applies). */
  recording: RecordingMode | null;
}

export type PlaceCallResult =
  | {
      ok: true;
      callId: string;
      sessionId: string;
      carrier: Carrier;
      status: CallStatus;
      failover: { from: Carrier; reason: string } | null;
    }
  | {
      ok: false;
      callId?: string;
      reason: string;
      retryable: boolean;
      /** Not placed: the tenant is at its concurrency limit, the limit could not be checked, or the call was shed. */
      admission?: "refused" | "unavailable" | "overloaded";
    };

export type ControlCommand = { action: "hangup" | "hold" | "resume" } | { action: "transfer"; to: string };

export type ControlResult =
  | { ok: true; status: CallStatus }
  | { ok: false; error: "invalid_state" | "carrier_error" | "unknown_call"; status?: CallStatus; message: string };

/**
 * Recorded first (so early webhooks find it), then placed through the first carrier whose API accepts it. Whether its
 * callee must hear a consent message first (`consentFirst`, asked once: the record keeps the answer for a retry) is
 * known before the dial, since a carrier that answers by command is then dialled without the stream.
 */
export async function placeCall(
  ledger: CallLedger,
  link: () => CarrierLink,
  input: PlaceCallInput,
  consentFirst: () => Promise<boolean>,
): Promise<PlaceCallResult> {
  const first = input.candidates[0];
  if (!first) return { ok: false, reason: "no carrier can place this call", retryable: false };
  const amd = input.machineDetection && (await newMachineDetection(input.machineDetection.mode, input.machineDetection.message));
  const record =
    ledger.record ??
    ledger.create(
      {
        sessionId: input.sessionId,
        tenantId: input.tenantId,
        callId: crypto.randomUUID(),
        carrier: first.carrier,
        carrierCallId: null,
        direction: "outbound",
        from: first.from,
        to: input.to,
        provider: input.provider,
        instructions: input.instructions,
        prompt: input.prompt,
        codec: input.codec,
        recording: input.recording,
        correlationId: input.correlationId,
        answerCommanded: true,
        amd,
      },
      "call.requested",
      input.to,
    );
  record.consentAtAnswer ??= await consentFirst();
  let failover: { from: Carrier; reason: string } | null = null;
  let lastError: unknown;
  for (const candidate of input.candidates) {
    record.carrier = candidate.carrier;
    record.from = candidate.from;
    try {
      const placed = await link().place(candidate.carrier, candidate.from);
      record.carrierCallId = placed.carrierCallId;
      ledger.note("api", "carrier.dialed", { from: record.status, to: null, outcome: "applied", detail: candidate.carrier });
      await ledger.flush();
      return { ok: true, callId: record.callId, sessionId: record.sessionId, carrier: candidate.carrier, status: record.status, failover };
    } catch (error) {
      lastError = error;
      ledger.note("system", "carrier.dial_failed", {
        from: record.status,
        to: null,
        outcome: "applied",
        detail: `${candidate.carrier}: ${reasonOf(error)}`,
      });
      if (!(error instanceof CarrierApiError && error.retryable)) break;
      failover = { from: candidate.carrier, reason: reasonOf(error) };
    }
  }
  ledger.transition("failed", "system", "carrier.dial_failed", "carrier_unavailable");
  await ledger.flush();
  return {
    ok: false,
    callId: record.callId,
    reason: reasonOf(lastError),
    retryable: lastError instanceof CarrierApiError && lastError.retryable,
  };
}

const CONTROL_RULES: Record<ControlCommand["action"], { already: CallStatus[]; from: CallStatus[] }> = {
  hangup: { already: ["completed", "failed"], from: ["initiated", "ringing", "in_progress", "on_hold", "transferring", "transferred"] },
  hold: { already: ["on_hold"], from: ["in_progress"] },
  resume: { already: ["in_progress"], from: ["on_hold"] },
  transfer: { already: ["transferring", "transferred"], from: ["in_progress", "on_hold"] },
};

/** Idempotent: repeating a command that already took effect succeeds without asking the carrier again. */
export async function controlCall(
  ledger: CallLedger,
  link: () => CarrierLink,
  command: ControlCommand,
  correlationId: string,
): Promise<ControlResult> {
  const record = ledger.record;
  if (!record) return { ok: false, error: "unknown_call", message: "No such call" };
  const rule = CONTROL_RULES[command.action];
  if (rule.already.includes(record.status)) return { ok: true, status: record.status };
  if (!rule.from.includes(record.status)) {
    return {
      ok: false,
      error: "invalid_state",
      status: record.status,
      message: `Cannot ${command.action} a call that is ${record.status}`,
    };
  }
  let transferCompleted = false;
  try {
    const carrier = link();
    if (command.action === "transfer") transferCompleted = (await carrier.transfer(command.to)).completed;
    else await carrier[command.action]();
  } catch (error) {
    ledger.log(correlationId).warn("carrier.control_failed", { action: command.action, error });
    return {
      ok: false,
      error: "carrier_error",
      status: record.status,
      message: `The carrier refused to ${command.action}: ${reasonOf(error)}`,
    };
  }
  const event = `api.${command.action}`;
  if (command.action === "hangup") {
    if (record.answeredAt === null) ledger.transition("failed", "api", event, "canceled");
    else ledger.transition("completed", "api", event, "hangup_requested");
  } else if (command.action === "hold") ledger.transition("on_hold", "api", event);
  else if (command.action === "resume") ledger.transition("in_progress", "api", event);
  else if (command.action === "transfer") {
    ledger.transition("transferring", "api", event, command.to);
    // Some carriers confirm nothing later (no bridged event): their accepted command is the transfer.
    if (transferCompleted) ledger.transition("transferred", "api", event);
  }
  await ledger.flush();
  return { ok: true, status: record.status };
}

/** A call stuck in a live state asks its carrier what became of it, and is finalised if it ended. */
export async function reconcileCall(ledger: CallLedger, link: () => CarrierLink): Promise<"terminal" | "live" | "finalized" | "unknown"> {
  const record = ledger.record;
  if (!record) return "unknown";
  if (isTerminal(record.status)) {
    await ledger.flush();
    return "terminal";
  }
  const now = await link().currentState();
  if (now.state !== "ended") return now.state;
  if (now.failed === null && record.answeredAt !== null) ledger.transition("completed", "system", "reconcile.ended");
  else ledger.transition("failed", "system", "reconcile.ended", now.failed ?? "lost");
  await ledger.flush();
  return "finalized";
}
