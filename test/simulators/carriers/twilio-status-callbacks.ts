import { encodeForm, rewriteOrigin, rfc2822 } from "./http.ts";
import { uuid } from "./ids.ts";
import { type FormParams, twilioSignature } from "./signing.ts";
import type { Timeline } from "./timeline.ts";

/** Twilio's `StatusCallbackEvent` names; each maps to the CallStatus the callback reports. */
export type TwilioStatusEvent = "initiated" | "ringing" | "answered" | "completed";

/** Ways to make status callbacks as unruly as Twilio's: they are separate requests that may arrive out of order. */
export interface StatusCallbackDelivery {
  /** Deliver each callback twice, with the same idempotency token (a Twilio retry). */
  duplicate?: boolean;
  /** Deliver each callback this much later, without holding up the call. */
  delayMs?: number;
  /** Hold every callback until the call ends, then deliver them newest first. */
  reverse?: boolean;
}

export interface StatusCallbackTarget {
  /** The public URL the platform asked for (signatures cover it). */
  url: string;
  events: readonly TwilioStatusEvent[];
}

interface PendingCallback {
  params: FormParams;
  token: string;
}

export class TwilioStatusCallbacks {
  readonly #target: StatusCallbackTarget | undefined;
  readonly #delivery: StatusCallbackDelivery;
  readonly #reachableBase: string;
  readonly #authToken: string;
  readonly #timeline: Timeline;
  #sequenceNumber = 0;
  readonly #held: PendingCallback[] = [];
  readonly #inFlight: Promise<void>[] = [];

  constructor(options: {
    target: StatusCallbackTarget | undefined;
    delivery?: StatusCallbackDelivery;
    reachableBase: string;
    authToken: string;
    timeline: Timeline;
  }) {
    this.#target = options.target;
    this.#delivery = options.delivery ?? {};
    this.#reachableBase = options.reachableBase;
    this.#authToken = options.authToken;
    this.#timeline = options.timeline;
  }

  /** Sends the callback for `event` if the platform subscribed to it; `callParams` describe the call now. */
  notify(event: TwilioStatusEvent, callParams: FormParams): void {
    if (!this.#target?.events.includes(event)) return;
    const params: FormParams = {
      ...callParams,
      SequenceNumber: String(this.#sequenceNumber++),
      Timestamp: rfc2822(new Date()),
      CallbackSource: "call-progress-events",
    };
    const callback = { params, token: uuid() };
    if (this.#delivery.reverse) this.#held.push(callback);
    else this.#inFlight.push(this.#deliver(callback));
  }

  /** Releases held callbacks (one at a time, newest first, so the order is exactly reversed) and waits for all. */
  async settle(): Promise<void> {
    await Promise.all(this.#inFlight);
    for (const callback of this.#held.splice(0).reverse()) await this.#deliver(callback);
  }

  async #deliver(callback: PendingCallback): Promise<void> {
    const target = this.#target!;
    if (this.#delivery.delayMs) await new Promise((resolve) => setTimeout(resolve, this.#delivery.delayMs));
    const copies = this.#delivery.duplicate ? 2 : 1;
    for (let copy = 0; copy < copies; copy++) {
      const label = `${callback.params.CallStatus} #${callback.params.SequenceNumber}${copy > 0 ? " (duplicate)" : ""}`;
      try {
        const response = await fetch(rewriteOrigin(target.url, this.#reachableBase), {
          method: "POST",
          headers: {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilioSignature(this.#authToken, target.url, callback.params),
            "I-Twilio-Idempotency-Token": callback.token,
          },
          body: encodeForm(callback.params),
        });
        await response.arrayBuffer();
        this.#timeline.add("status-callback", `${label} → HTTP ${response.status}`);
        if (!response.ok) this.#timeline.add("error", `status callback ${label} answered HTTP ${response.status}`);
      } catch (error) {
        this.#timeline.add("error", `status callback ${label} failed: ${String(error)}`);
      }
    }
  }
}
