import type { CallSignal } from "../../workers/carriers/carrier.ts";
import type { AnsweredBy, MachineDetectionMode, MachineOutcome } from "../../workers/shared/db/schema.ts";
import { sha256Hex } from "../../workers/shared/encoding.ts";
import { reasonOf } from "../../workers/shared/errors.ts";
import type { ControlResult } from "./call-commands.ts";
import type { CallLedger } from "./call-ledger.ts";
import type { CallRecord } from "./call-store.ts";
import type { CarrierLink } from "./carrier-link.ts";
import { isTerminal } from "./state-machine.ts";

/** An outbound call's answering-machine detection, kept on the call's record (its object's storage). */
export interface MachineDetectionState {
  mode: MachineDetectionMode;
  /** What a machine is told (voicemail mode): the tenant's text, kept only in the call's object. */
  message: string | null;
  /** The message's length and SHA-256 (hex): what D1, logs and the history say of it. */
  digest: { chars: number; sha256: string } | null;
  answeredBy: AnsweredBy | null;
  /** The message is being played (a carrier that reports when it has been said hangs up then). */
  speaking: boolean;
  outcome: MachineOutcome | null;
}

export async function newMachineDetection(mode: MachineDetectionMode, message: string | null): Promise<MachineDetectionState> {
  const digest = message === null ? null : { chars: message.length, sha256: await sha256Hex(message) };
  return { mode, message, digest, answeredBy: null, speaking: false, outcome: null };
}

/**
 * The agent holds its first words until the carrier says who answered: a machine must not record half a greeting,
 * and a person's first "hello?" waits in the caller-audio buffer (10 s) for the agent to answer once it is known.
 * Not even the provider is dialled meanwhile, so a machine never costs a provider session.
 */
export const agentHeld = (record: CallRecord): boolean => record.amd !== undefined && record.amd !== null && record.amd.outcome !== "agent";

/**
 * A verdict that has not come this long after the answer never will (a lost callback: Twilio does not retry it, and
 * gives its own `unknown` after its 30 s detection timeout; Telnyx listens about 3.5 s): the call goes on as if the
 * carrier were not sure — the agent for a call with no verdict, the message for a machine whose beep was not reported.
 */
export const VERDICT_TIMEOUT_MS = 40_000;
/** Object storage key of that deadline (epoch ms), set at the answer and cleared by the verdict. */
export const VERDICT_DEADLINE_KEY = "amd_verdict_by";

/** A machine (or a fax) answered: the agent never speaks on this call, not even while the machine's greeting runs. */
export const agentBarred = (record: CallRecord): boolean => record.amd?.answeredBy === "machine" || record.amd?.answeredBy === "fax";

interface MachineParts {
  ledger: CallLedger;
  storage: SyncKvStorage;
  wakeBy(at: number): Promise<void>;
  carrier: () => CarrierLink;
  /** Ends the call through its carrier (the API's hangup path). */
  hangUp(): Promise<ControlResult>;
  /** A person answered: the agent starts (its provider is dialled, the held caller audio delivered). */
  startAgent(): void;
  /** A machine answered: the agent's session, never connected, is dropped. */
  dropAgent(): void;
}

/**
 * What the call does with the carrier's verdict: a person (or a verdict the carrier is not sure of) gets the agent;
 * a machine is hung up on, or, in voicemail mode, once its greeting has ended (the beep), hears the call's message
 * and the call ends. Only the first verdict counts: duplicates, late ones (after the call ended) and out-of-order ones
 * change nothing. `unknown` is treated as a person: wrongly hanging up on one, or reading them a recorded message,
 * is the worst outcome; an agent talking to a machine costs a little and is on the call's record.
 */
export class AnsweringMachine {
  constructor(private readonly parts: MachineParts) {}

  async onSignal(signal: CallSignal): Promise<void> {
    const record = this.parts.ledger.record;
    if (!record?.amd || isTerminal(record.status)) return;
    // The decision is taken (and stored) before anything here awaits; the deadline follows what it left.
    const acting = this.act(record.amd, signal);
    await this.keepDeadline(record);
    await acting;
  }

  private async act(amd: MachineDetectionState, signal: CallSignal): Promise<void> {
    if (signal.kind === "spoken") {
      if (amd.speaking && amd.outcome === null) await this.voicemailSpoken();
      return;
    }
    if (signal.kind !== "machine_detection" || amd.outcome !== null || amd.speaking) return;
    // A greeting that ended is a machine's, even when it is reported before (or without) the verdict.
    const answeredBy = signal.answeredBy ?? (signal.messageEnded ? "machine" : null);
    if (answeredBy === null) return;
    if (answeredBy === "human" || answeredBy === "unknown") {
      this.decide(answeredBy, "agent", signal.result);
      this.parts.startAgent();
      return;
    }
    amd.answeredBy = answeredBy;
    this.parts.dropAgent();
    // A fax takes no message.
    if (answeredBy === "fax" || amd.mode === "hangup" || amd.message === null) {
      await this.hangUp(signal.result);
      return;
    }
    if (!signal.messageEnded) {
      this.note("amd.awaiting_beep", signal.result);
      return;
    }
    await this.leaveVoicemail(amd.message);
  }

  /** The alarm: past the deadline with no verdict (or no beep), the call goes on without it. */
  async onAlarm(): Promise<void> {
    const due = this.parts.storage.get<number>(VERDICT_DEADLINE_KEY);
    const amd = this.parts.ledger.record?.amd;
    if (due === undefined || !amd) return;
    if (Date.now() < due) {
      await this.parts.wakeBy(due);
      return;
    }
    this.parts.storage.delete(VERDICT_DEADLINE_KEY);
    const awaitingBeep = amd.answeredBy === "machine";
    await this.onSignal({
      kind: "machine_detection",
      answeredBy: awaitingBeep ? null : "unknown",
      messageEnded: awaitingBeep,
      result: "verdict_timeout",
    });
  }

  /** Once the call is answered, the verdict has VERDICT_TIMEOUT_MS to come (set once; cleared once it is decided). */
  private async keepDeadline(record: CallRecord): Promise<void> {
    const pending = record.amd!.outcome === null && !record.amd!.speaking;
    const set = this.parts.storage.get<number>(VERDICT_DEADLINE_KEY) !== undefined;
    if (!pending) {
      if (set) this.parts.storage.delete(VERDICT_DEADLINE_KEY);
      return;
    }
    if (set || record.answeredAt === null) return;
    const due = record.answeredAt + VERDICT_TIMEOUT_MS;
    this.parts.storage.put(VERDICT_DEADLINE_KEY, due);
    await this.parts.wakeBy(due);
  }

  private decide(answeredBy: AnsweredBy, outcome: MachineOutcome, detail: string | null): void {
    const amd = this.parts.ledger.record!.amd!;
    amd.answeredBy = answeredBy;
    amd.outcome = outcome;
    this.note(`amd.${outcome}`, detail);
  }

  private note(event: string, detail: string | null): void {
    const record = this.parts.ledger.record!;
    record.updatedAt = Date.now();
    this.parts.ledger.note("system", event, { from: record.status, to: null, outcome: "applied", detail });
  }

  private async hangUp(detail: string | null): Promise<void> {
    this.decide(this.parts.ledger.record!.amd!.answeredBy ?? "machine", "machine_hangup", detail);
    const result = await this.parts.hangUp();
    if (!result.ok) this.parts.ledger.log().warn("amd.hangup_failed", { error: result.message });
  }

  /** The message plays after the beep; a carrier that ends the call itself once it is said (Twilio) needs nothing more. */
  private async leaveVoicemail(message: string): Promise<void> {
    const amd = this.parts.ledger.record!.amd!;
    amd.speaking = true;
    this.note("amd.voicemail_started", `chars=${message.length}`);
    try {
      const { endsCall } = await this.parts.carrier().leaveVoicemail(message);
      if (endsCall) this.voicemailLeft();
    } catch (error) {
      // The message could not be played: the machine is hung up on rather than left listening to silence.
      this.parts.ledger.log().warn("amd.voicemail_failed", { error: reasonOf(error) });
      amd.speaking = false;
      await this.hangUp("voicemail_failed");
    }
  }

  /** The carrier has said the message (Telnyx `call.speak.ended`): recorded, then the call ends. */
  private async voicemailSpoken(): Promise<void> {
    this.voicemailLeft();
    const result = await this.parts.hangUp();
    if (!result.ok) this.parts.ledger.log().warn("amd.hangup_failed", { error: result.message });
  }

  /** The record says a voicemail was left: its length and digest, never its text (D1, logs and history alike). */
  private voicemailLeft(): void {
    const amd = this.parts.ledger.record!.amd!;
    const chars = amd.digest?.chars ?? 0;
    this.decide(amd.answeredBy ?? "machine", "voicemail_left", `chars=${chars} sha256=${amd.digest?.sha256 ?? ""}`);
    this.parts.ledger.log().info("amd.voicemail_left", { chars });
  }
}
