import Telnyx from "telnyx";
import { z } from "zod";
import { CARRIER_TIMEOUT_MS, CarrierApiError, isRetryableStatus } from "../carrier-api-error.ts";

/** Telnyx Call Control commands through the telnyx SDK, pointed at TELNYX_API_BASE. */
export interface TelnyxSettings {
  TELNYX_API_BASE: string;
  TELNYX_API_KEY: string;
  TELNYX_CONNECTION_ID: string;
}

export interface StreamTarget {
  streamUrl: string;
  codec: "PCMU" | "PCMA";
}

const ALREADY_ENDED = "90018";

/** The part of a `phone_numbers` page the ownership check reads. */
const phoneNumbersPage = z.array(z.object({ phone_number: z.string(), status: z.string() }));
/** Statuses of a number the account no longer (or never did) hold. */
const NOT_HELD = new Set(["purchase-failed", "port-failed", "deleted", "ported-out"]);

export class TelnyxCallControl {
  private readonly client: Telnyx;

  constructor(private readonly settings: TelnyxSettings) {
    this.client = new Telnyx({
      apiKey: settings.TELNYX_API_KEY,
      baseURL: `${settings.TELNYX_API_BASE}/v2`,
      maxRetries: 0,
      timeout: CARRIER_TIMEOUT_MS,
    });
  }

  private static streaming(target: StreamTarget) {
    return {
      stream_url: target.streamUrl,
      stream_track: "inbound_track" as const,
      stream_codec: target.codec,
      stream_bidirectional_mode: "rtp" as const,
      stream_bidirectional_codec: target.codec,
    };
  }

  /** Runs a command; `alreadyEnded` when Telnyx says the call is gone (422, code 90018). */
  private async run(what: string, command: () => Promise<unknown>): Promise<{ alreadyEnded: boolean }> {
    try {
      await command();
      return { alreadyEnded: false };
    } catch (error) {
      if (error instanceof Telnyx.APIError) {
        const codes = JSON.stringify(error.error ?? {});
        if (error.status === 422 && codes.includes(ALREADY_ENDED)) return { alreadyEnded: true };
        const status = typeof error.status === "number" ? error.status : undefined;
        throw new CarrierApiError(
          `Telnyx ${what} answered ${status ?? "no status"}`,
          status,
          status === undefined || isRetryableStatus(status),
        );
      }
      throw new CarrierApiError(`Telnyx ${what} failed`, undefined, true);
    }
  }

  answer(callControlId: string, commandId: string, clientState: string, target: StreamTarget) {
    return this.run("answer", () =>
      this.client.calls.actions.answer(callControlId, {
        command_id: commandId,
        client_state: clientState,
        ...TelnyxCallControl.streaming(target),
      }),
    );
  }

  /** Answers without media: the caller hears only what the platform says (a busy message; a consent before its stream). */
  answerWithoutMedia(callControlId: string, commandId: string, clientState: string) {
    return this.run("answer", () => this.client.calls.actions.answer(callControlId, { command_id: commandId, client_state: clientState }));
  }

  /** Says `text` on the call; Telnyx reports `call.speak.ended` when it has been said. */
  speak(callControlId: string, commandId: string, clientState: string, text: string) {
    return this.run("speak", () =>
      this.client.calls.actions.speak(callControlId, {
        command_id: commandId,
        client_state: clientState,
        payload: text,
        voice: "female",
        language: "en-US",
      }),
    );
  }

  /** Turns away a call we will not answer (an unknown number). */
  reject(callControlId: string, commandId: string) {
    return this.run("reject", () => this.client.calls.actions.reject(callControlId, { cause: "CALL_REJECTED", command_id: commandId }));
  }

  hangup(callControlId: string, commandId: string) {
    return this.run("hangup", () => this.client.calls.actions.hangup(callControlId, { command_id: commandId }));
  }

  stopStreaming(callControlId: string, commandId: string) {
    return this.run("streaming_stop", () => this.client.calls.actions.stopStreaming(callControlId, { command_id: commandId }));
  }

  startStreaming(callControlId: string, commandId: string, clientState: string, target: StreamTarget) {
    return this.run("streaming_start", () =>
      this.client.calls.actions.startStreaming(callControlId, {
        command_id: commandId,
        client_state: clientState,
        ...TelnyxCallControl.streaming(target),
      }),
    );
  }

  transfer(callControlId: string, commandId: string, clientState: string, to: string) {
    return this.run("transfer", () =>
      this.client.calls.actions.transfer(callControlId, { command_id: commandId, client_state: clientState, to }),
    );
  }

  async dial(params: {
    to: string;
    from: string;
    clientState: string;
    commandId: string;
    webhookUrl: string;
    /** null: dialled without media (the stream is started later by `startStreaming`). */
    target: StreamTarget | null;
    /** `detect`: the verdict alone; `greeting_end`: the verdict, then the end of a machine's greeting (its beep). */
    machineDetection?: "detect" | "greeting_end";
  }): Promise<{ callControlId: string }> {
    try {
      const response = await this.client.calls.dial({
        connection_id: this.settings.TELNYX_CONNECTION_ID,
        to: params.to,
        from: params.from,
        client_state: params.clientState,
        command_id: params.commandId,
        webhook_url: params.webhookUrl,
        ...(params.target && TelnyxCallControl.streaming(params.target)),
        ...(params.machineDetection && { answering_machine_detection: params.machineDetection }),
      });
      const id = response.data?.call_control_id;
      if (!id) throw new CarrierApiError("Telnyx dial returned no call_control_id", 200, false);
      return { callControlId: id };
    } catch (error) {
      if (error instanceof CarrierApiError) throw error;
      const status = error instanceof Telnyx.APIError && typeof error.status === "number" ? error.status : undefined;
      throw new CarrierApiError(`Telnyx dial failed (${status ?? "network"})`, status, status === undefined || isRetryableStatus(status));
    }
  }

  /** null when Telnyx no longer knows the call. */
  async isAlive(callControlId: string): Promise<boolean | null> {
    try {
      const response = await this.client.calls.retrieveStatus(callControlId);
      return response.data?.is_alive ?? null;
    } catch (error) {
      if (error instanceof Telnyx.APIError && (error.status === 404 || error.status === 422)) return null;
      throw new CarrierApiError(
        "Telnyx call status failed",
        error instanceof Telnyx.APIError && typeof error.status === "number" ? error.status : undefined,
        true,
      );
    }
  }

  /**
   * Sends a text message (`POST /v2/messages`, the API behind the same key). Telnyx answers the queued message with its
   * id; a 4xx other than 429 will not succeed on a retry (an invalid number, a sender without messaging).
   */
  async sendMessage(message: { from: string; to: string; body: string }): Promise<{ messageId: string }> {
    let id: string | undefined;
    try {
      id = (await this.client.messages.send({ from: message.from, to: message.to, text: message.body })).data?.id;
    } catch (error) {
      const status = error instanceof Telnyx.APIError && typeof error.status === "number" ? error.status : undefined;
      throw new CarrierApiError(
        `Telnyx send message failed (${status ?? "network"})`,
        status,
        status === undefined || isRetryableStatus(status),
      );
    }
    if (!id) throw new CarrierApiError("Telnyx send message returned no id", 200, false);
    return { messageId: id };
  }

  /**
   * Whether the account holds `e164` (the API behind Call Control's client, so it lives with it). Telnyx's filter
   * takes digits only and matches partial numbers: the `+` is dropped and the match is exact here.
   */
  async holdsNumber(e164: string): Promise<boolean> {
    let data: unknown;
    try {
      ({ data } = await this.client.phoneNumbers.list({ filter: { phone_number: e164.replace(/^\+/, "") } }));
    } catch (error) {
      const status = error instanceof Telnyx.APIError && typeof error.status === "number" ? error.status : undefined;
      throw new CarrierApiError(
        `Telnyx number lookup failed (${status ?? "network"})`,
        status,
        status === undefined || isRetryableStatus(status),
      );
    }
    const numbers = phoneNumbersPage.safeParse(data);
    if (!numbers.success) throw new CarrierApiError("Telnyx number lookup answered an unexpected body", 200, true);
    return numbers.data.some((number) => number.phone_number === e164 && !NOT_HELD.has(number.status));
  }
}
