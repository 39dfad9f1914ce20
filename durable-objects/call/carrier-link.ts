import type { Carrier } from "../../workers/shared/db/schema.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import { requireSettings } from "../../workers/shared/settings.ts";
import { CarrierApiError } from "../../workers/telephony/carrier-api-error.ts";
import { carrierAvailable, recordCarrierResult } from "../../workers/telephony/carrier-breaker.ts";
import { publicUrls } from "../../workers/telephony/public-urls.ts";
import { TelnyxCallControl } from "../../workers/telephony/telnyx/call-control.ts";
import { encodeClientState } from "../../workers/telephony/telnyx/webhook-events.ts";
import { TwilioRest } from "../../workers/telephony/twilio/rest.ts";
import { connectStreamTwiml, dialTwiml, holdTwiml } from "../../workers/telephony/twilio/twiml.ts";
import type { CallRecord } from "./call-store.ts";

const RETRY_DELAYS_MS = [250, 1_000];

/** Commands the call's object sends its carrier for the call it owns; every one is idempotent at the carrier. */
export class CarrierLink {
  constructor(
    private readonly env: Env,
    private readonly record: CallRecord,
    private readonly log: Logger,
  ) {}

  private urls() {
    return publicUrls(requireSettings(this.env, "publicUrls").PUBLIC_BASE_URL);
  }

  private twilio() {
    return new TwilioRest(requireSettings(this.env, "twilio"));
  }

  private telnyx() {
    return new TelnyxCallControl(requireSettings(this.env, "telnyx"));
  }

  private commandId(action: string) {
    return `${action}-${this.record.sessionId}-${this.record.eventSeq}`;
  }

  private streamTarget() {
    return { streamUrl: this.urls().telnyxStream(this.record.sessionId, this.record.mediaToken), codec: this.record.codec };
  }

  /** Telnyx inbound: answer with bidirectional streaming to this call's media route. */
  async answer(): Promise<void> {
    const record = this.record;
    await guarded("telnyx", () =>
      withRetries(() =>
        this.telnyx().answer(record.carrierCallId!, `answer-${record.sessionId}`, encodeClientState(record.sessionId), this.streamTarget()),
      ),
    );
  }

  /** Places the outbound call through `carrier`; the carrier's webhooks carry our session id back. */
  async place(carrier: Carrier, from: string): Promise<{ carrierCallId: string }> {
    const record = this.record;
    const urls = this.urls();
    if (!carrierAvailable(carrier)) throw new CarrierApiError(`${carrier} circuit is open`, undefined, true);
    return guarded(carrier, async () => {
      if (carrier === "twilio") {
        const { sid } = await this.twilio().createCall({
          to: record.to,
          from,
          url: urls.twilioVoice(record.sessionId),
          statusCallback: urls.twilioStatus(record.sessionId),
        });
        return { carrierCallId: sid };
      }
      const { callControlId } = await this.telnyx().dial({
        to: record.to,
        from,
        clientState: encodeClientState(record.sessionId),
        commandId: `dial-${record.sessionId}`,
        webhookUrl: urls.telnyxWebhook(),
        target: this.streamTarget(),
      });
      return { carrierCallId: callControlId };
    });
  }

  /** Ends the call at the carrier; a call the carrier already ended counts as success. */
  async hangup(): Promise<void> {
    const { carrier, carrierCallId, answeredAt } = this.record;
    if (!carrierCallId) return;
    await guarded(carrier, () =>
      carrier === "twilio"
        ? this.twilio().updateCall(carrierCallId, { Status: answeredAt === null ? "canceled" : "completed" })
        : this.telnyx().hangup(carrierCallId, this.commandId("hangup")),
    );
  }

  /** Hold: the caller hears a hold prompt (Twilio) or nothing (Telnyx) while the media stream is stopped. */
  async hold(): Promise<void> {
    const { carrier, carrierCallId } = this.record;
    await guarded(carrier, () =>
      carrier === "twilio"
        ? this.twilio().updateCall(carrierCallId!, { Twiml: holdTwiml() })
        : this.telnyx().stopStreaming(carrierCallId!, this.commandId("hold")),
    );
  }

  /** Resume: the media stream is reconnected to this call's object. */
  async resume(): Promise<void> {
    const record = this.record;
    await guarded(record.carrier, () =>
      record.carrier === "twilio"
        ? this.twilio().updateCall(record.carrierCallId!, {
            Twiml: connectStreamTwiml(this.urls().twilioStream(record.sessionId), record.mediaToken),
          })
        : this.telnyx().startStreaming(
            record.carrierCallId!,
            this.commandId("resume"),
            encodeClientState(record.sessionId),
            this.streamTarget(),
          ),
    );
  }

  async transfer(to: string): Promise<void> {
    const record = this.record;
    await guarded(record.carrier, () =>
      record.carrier === "twilio"
        ? this.twilio().updateCall(record.carrierCallId!, { Twiml: dialTwiml(to) })
        : this.telnyx().transfer(record.carrierCallId!, this.commandId("transfer"), encodeClientState(record.sessionId), to),
    );
  }

  /** What the carrier says about the call now: `ended` with a failure reason or not, `live`, or `unknown`. */
  async currentState(): Promise<{ state: "live" } | { state: "ended"; failed: string | null } | { state: "unknown" }> {
    const { carrier, carrierCallId } = this.record;
    if (!carrierCallId) return { state: "unknown" };
    if (carrier === "twilio") {
      const call = await this.twilio().fetchCall(carrierCallId);
      if (!call) return { state: "ended", failed: "lost" };
      if (["queued", "ringing", "in-progress"].includes(call.status)) return { state: "live" };
      return { state: "ended", failed: call.status === "completed" ? null : call.status.replace("-", "_") };
    }
    const alive = await this.telnyx().isAlive(carrierCallId);
    if (alive) return { state: "live" };
    return { state: "ended", failed: this.record.answeredAt === null ? "lost" : null };
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
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[i]));
    }
  }
}
