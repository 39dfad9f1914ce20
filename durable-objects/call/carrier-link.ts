import type { CarrierCallState, CarrierCommands, ConsentStep, TurnAwayStep } from "../../workers/carriers/carrier.ts";
import { CarrierApiError } from "../../workers/carriers/carrier-api-error.ts";
import { carrierAvailable, recordCarrierResult } from "../../workers/carriers/carrier-breaker.ts";
import { carrierNamed } from "../../workers/carriers/registry.ts";
import type { Carrier } from "../../workers/shared/db/schema.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import { sleep } from "../../workers/shared/sleep.ts";
import type { CallRecord } from "./call-store.ts";

const RETRY_DELAYS_MS = [250, 1_000];

/**
 * The call's object speaking to its carrier, whichever it is: the carrier's commands (registry) for this call,
 * each outcome fed to the carrier's breaker, the answer retried while the carrier's API is briefly away.
 */
export class CarrierLink {
  constructor(
    private readonly env: Env,
    private readonly record: CallRecord,
    private readonly log: Logger,
  ) {}

  private commands(carrier: Carrier = this.record.carrier): CarrierCommands {
    const record = this.record;
    return carrierNamed(carrier).commands(this.env, {
      sessionId: record.sessionId,
      carrierCallId: record.carrierCallId,
      to: record.to,
      codec: record.codec,
      answered: record.answeredAt !== null,
      commandSeq: record.eventSeq,
      machineDetection: record.amd?.mode ?? null,
      streamAfterConsent: record.consentAtAnswer === true,
    });
  }

  /** Answers an inbound call by command (carriers whose webhook response does not answer it). */
  answer(): Promise<void> {
    return guarded(this.record.carrier, () => withRetries(() => this.commands().answer()));
  }

  /** Places the outbound call through `carrier`; the carrier's webhooks carry our session id back. */
  async place(carrier: Carrier, from: string): Promise<{ carrierCallId: string }> {
    if (!carrierAvailable(carrier)) throw new CarrierApiError(`${carrier} circuit is open`, undefined, true);
    return guarded(carrier, () => this.commands(carrier).place(from));
  }

  hangup(): Promise<void> {
    return guarded(this.record.carrier, () => this.commands().hangup());
  }

  hold(): Promise<void> {
    return guarded(this.record.carrier, () => this.commands().hold());
  }

  resume(): Promise<void> {
    return guarded(this.record.carrier, () => this.commands().resume());
  }

  transfer(to: string): Promise<{ completed: boolean }> {
    return guarded(this.record.carrier, () => this.commands().transfer(to));
  }

  /** One step of turning away a call past its tenant's concurrency limit (see `CarrierCommands.turnAway`). */
  turnAway(step: TurnAwayStep): Promise<void> {
    return guarded(this.record.carrier, () => withRetries(() => this.commands().turnAway(step)));
  }

  /** Plays the voicemail message to the machine that answered (see `CarrierCommands.leaveVoicemail`). */
  leaveVoicemail(message: string): Promise<{ endsCall: boolean }> {
    return guarded(this.record.carrier, () => withRetries(() => this.commands().leaveVoicemail(message)));
  }

  /** One step of answering with the consent message first (see `CarrierCommands.consent`). */
  consent(step: ConsentStep): Promise<void> {
    return guarded(this.record.carrier, () => withRetries(() => this.commands().consent(step)));
  }

  currentState(): Promise<CarrierCallState> {
    return this.commands().currentState();
  }

  logFailure(what: string, error: unknown): void {
    this.log.warn(`carrier.${what}_failed`, { carrier: this.record.carrier, error });
  }
}

/** Feeds every carrier API outcome into the carrier's breaker. */
async function guarded<T>(carrier: Carrier, command: () => Promise<T>): Promise<T> {
  try {
    const result = await command();
    recordCarrierResult(carrier, true);
    return result;
  } catch (error) {
    if (error instanceof CarrierApiError && error.retryable) recordCarrierResult(carrier, false);
    throw error;
  }
}

export async function withRetries<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      const retryable = error instanceof CarrierApiError && error.retryable;
      if (!retryable || i >= RETRY_DELAYS_MS.length) throw error;
      await sleep(RETRY_DELAYS_MS[i]!);
    }
  }
}
