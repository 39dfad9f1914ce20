import { requireSettings } from "../../workers/config/settings";
import type { Logger } from "../../workers/http/logger";
import { CarrierApiError } from "../../workers/telephony/carrier-api-error";
import { publicUrls } from "../../workers/telephony/public-urls";
import { encodeClientState } from "../../workers/telephony/telnyx/webhook-events";
import { TelnyxCallControl } from "../../workers/telephony/telnyx/call-control";
import type { CallRecord } from "./call-store";

const RETRY_DELAYS_MS = [250, 1_000];

interface LinkHooks {
  markAnswerCommanded(): void;
  onCommandFailed(what: string, reason: string): Promise<void>;
  log: Logger;
}

/** Commands the call's object sends its carrier for the call it owns. */
export class CarrierLink {
  constructor(
    private readonly env: Env,
    private readonly record: CallRecord,
    private readonly hooks: LinkHooks,
  ) {}

  /** Telnyx inbound: answer with bidirectional streaming to this call's media route. Retried on transient failures. */
  async answer(): Promise<void> {
    const record = this.record;
    if (record.carrier !== "telnyx" || !record.carrierCallId) return;
    try {
      const settings = requireSettings(this.env, "telnyx");
      const urls = publicUrls(settings.PUBLIC_BASE_URL);
      const control = new TelnyxCallControl(settings);
      await withRetries(() =>
        control.answer(record.carrierCallId!, `answer-${record.sessionId}`, encodeClientState(record.sessionId), {
          streamUrl: urls.telnyxStream(record.sessionId, record.mediaToken),
          codec: record.codec,
        }),
      );
      this.hooks.markAnswerCommanded();
    } catch (error) {
      this.hooks.log.error("carrier.answer_failed", { error });
      await this.hooks.onCommandFailed("answer", error instanceof CarrierApiError ? `answer_${error.status ?? "network"}` : "answer_error");
    }
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
