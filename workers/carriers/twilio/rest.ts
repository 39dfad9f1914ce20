import { z } from "zod";
import { CARRIER_TIMEOUT_MS, CarrierApiError, isRetryableStatus } from "../carrier-api-error.ts";

/**
 * The Twilio REST calls the platform makes, over fetch: the twilio package's REST client is
 * built on Node's HTTP stack, so only its TwiML builder and signature oracle are used here.
 */
export interface TwilioRestSettings {
  TWILIO_API_BASE: string;
  TWILIO_ACCOUNT_SID: string;
  TWILIO_AUTH_TOKEN: string;
}

export type CallUpdate = { Status: "completed" | "canceled" } | { Twiml: string } | { Url: string };

/** The part of an `IncomingPhoneNumbers` page the ownership check reads. */
const incomingPhoneNumbersPage = z.object({ incoming_phone_numbers: z.array(z.object({ phone_number: z.string() })) });

export class TwilioRest {
  constructor(private readonly settings: TwilioRestSettings) {}

  private url(path: string): string {
    return `${this.settings.TWILIO_API_BASE}/2010-04-01/Accounts/${this.settings.TWILIO_ACCOUNT_SID}${path}`;
  }

  private async request(method: "GET" | "POST", path: string, form?: Array<[string, string]>): Promise<Response> {
    const headers: Record<string, string> = {
      Authorization: `Basic ${btoa(`${this.settings.TWILIO_ACCOUNT_SID}:${this.settings.TWILIO_AUTH_TOKEN}`)}`,
    };
    let body: string | undefined;
    if (form) {
      headers["Content-Type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(form).toString();
    }
    try {
      return await fetch(this.url(path), { method, headers, body, signal: AbortSignal.timeout(CARRIER_TIMEOUT_MS) });
    } catch (error) {
      throw new CarrierApiError(`Twilio ${method} ${path} failed: ${error instanceof Error ? error.name : "network"}`, undefined, true);
    }
  }

  private static async fail(response: Response, what: string): Promise<never> {
    const detail = await response.text().catch(() => "");
    throw new CarrierApiError(
      `Twilio ${what} answered ${response.status}: ${detail.slice(0, 200)}`,
      response.status,
      isRetryableStatus(response.status),
    );
  }

  async createCall(params: {
    to: string;
    from: string;
    url: string;
    statusCallback: string;
    timeoutSeconds?: number;
    /** Asynchronous answering-machine detection: the call connects at once and the verdict is posted to `callback`. */
    machineDetection?: { mode: "Enable" | "DetectMessageEnd"; callback: string };
  }): Promise<{ sid: string }> {
    const form: Array<[string, string]> = [
      ["To", params.to],
      ["From", params.from],
      ["Url", params.url],
      ["StatusCallback", params.statusCallback],
      ["StatusCallbackMethod", "POST"],
      ...(["initiated", "ringing", "answered", "completed"] as const).map((event): [string, string] => ["StatusCallbackEvent", event]),
      ["Timeout", String(params.timeoutSeconds ?? 30)],
      ...(params.machineDetection
        ? ([
            ["MachineDetection", params.machineDetection.mode],
            ["AsyncAmd", "true"],
            ["AsyncAmdStatusCallback", params.machineDetection.callback],
            ["AsyncAmdStatusCallbackMethod", "POST"],
          ] as Array<[string, string]>)
        : []),
    ];
    const response = await this.request("POST", "/Calls.json", form);
    if (!response.ok) return TwilioRest.fail(response, "create call");
    const body = (await response.json()) as { sid?: unknown };
    if (typeof body.sid !== "string") throw new CarrierApiError("Twilio create call returned no sid", response.status, false);
    return { sid: body.sid };
  }

  /** `alreadyEnded` when Twilio answers 404/20404: for a hangup that is success. */
  async updateCall(callSid: string, update: CallUpdate): Promise<{ alreadyEnded: boolean }> {
    const response = await this.request("POST", `/Calls/${callSid}.json`, Object.entries(update));
    if (response.ok) return { alreadyEnded: false };
    if (response.status === 404) return { alreadyEnded: true };
    return TwilioRest.fail(response, "update call");
  }

  async fetchCall(callSid: string): Promise<{ status: string; duration?: number } | null> {
    const response = await this.request("GET", `/Calls/${callSid}.json`);
    if (response.status === 404) return null;
    if (!response.ok) return TwilioRest.fail(response, "fetch call");
    const body = (await response.json()) as { status?: unknown; duration?: unknown };
    if (typeof body.status !== "string") throw new CarrierApiError("Twilio fetch call returned no status", response.status, false);
    return { status: body.status, duration: typeof body.duration === "string" ? Number(body.duration) : undefined };
  }

  /** Queues a text message; Twilio answers 201 with the Message resource, whose `sid` starts with SM (or MM). */
  async sendMessage(message: { to: string; from: string; body: string }): Promise<{ sid: string }> {
    const response = await this.request("POST", "/Messages.json", [
      ["To", message.to],
      ["From", message.from],
      ["Body", message.body],
    ]);
    if (!response.ok) return TwilioRest.fail(response, "send message");
    const body = (await response.json().catch(() => null)) as { sid?: unknown } | null;
    if (typeof body?.sid !== "string") throw new CarrierApiError("Twilio send message returned no sid", response.status, false);
    return { sid: body.sid };
  }

  /** Whether the account holds `e164`. Twilio's `PhoneNumber` filter also matches partial numbers: the match is exact here. */
  async holdsNumber(e164: string): Promise<boolean> {
    const response = await this.request("GET", `/IncomingPhoneNumbers.json?PhoneNumber=${encodeURIComponent(e164)}`);
    if (!response.ok) return TwilioRest.fail(response, "number lookup");
    const page = incomingPhoneNumbersPage.safeParse(await response.json().catch(() => null));
    if (!page.success) throw new CarrierApiError("Twilio number lookup answered an unexpected body", response.status, true);
    return page.data.incoming_phone_numbers.some((number) => number.phone_number === e164);
  }
}
