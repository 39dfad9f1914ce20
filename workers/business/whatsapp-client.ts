import { z } from "zod";

/**
 * Sends a text message through the WhatsApp Cloud API (`POST {base}/v21.0/{phone number id}/messages`). Used by the
 * WhatsApp webhook's replies and by WhatsApp reminders; the caller decides whether a failure is retried.
 */
export const WHATSAPP_GRAPH_VERSION = "v21.0";

/** The settings sending needs (`requireSettings(env, "whatsappSend")` gives them). */
export interface WhatsAppSendSettings {
  WHATSAPP_API_BASE: string;
  WHATSAPP_ACCESS_TOKEN: string;
  WHATSAPP_PHONE_NUMBER_ID: string;
}

/** WhatsApp refuses text bodies above 4096 characters. */
export const MAX_WHATSAPP_TEXT = 4096;
const SEND_TIMEOUT_MS = 10_000;

const sendResponse = z.object({ messages: z.array(z.object({ id: z.string().min(1) })).min(1) });

export class WhatsAppSendError extends Error {
  constructor(
    message: string,
    /** The Cloud API's HTTP status, or null when it could not be reached or answered nonsense. */
    readonly status: number | null,
  ) {
    super(message);
    this.name = "WhatsAppSendError";
  }

  /** Rate limits and server errors may succeed later; a 4xx (bad number, expired token) will not. */
  get retryable(): boolean {
    return this.status === null || this.status === 429 || this.status >= 500;
  }
}

/** `to` is the recipient's WhatsApp id (E.164 digits, with or without `+`); resolves to Meta's message id. */
export async function sendWhatsAppText(settings: WhatsAppSendSettings, to: string, body: string): Promise<string> {
  const recipient = to.replace(/^\+/, "");
  if (!/^\d{6,15}$/.test(recipient)) throw new WhatsAppSendError("recipient is not a phone number", 400);
  const url = `${settings.WHATSAPP_API_BASE.replace(/\/$/, "")}/${WHATSAPP_GRAPH_VERSION}/${settings.WHATSAPP_PHONE_NUMBER_ID}/messages`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${settings.WHATSAPP_ACCESS_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to: recipient,
        type: "text",
        text: { preview_url: false, body: body.slice(0, MAX_WHATSAPP_TEXT) },
      }),
      signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
    });
  } catch {
    throw new WhatsAppSendError("WhatsApp Cloud API unreachable", null);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new WhatsAppSendError(`WhatsApp Cloud API answered ${response.status}`, response.status);
  }
  const parsed = sendResponse.safeParse(await response.json().catch(() => null));
  if (!parsed.success) throw new WhatsAppSendError("WhatsApp Cloud API answered without a message id", null);
  return parsed.data.messages[0]!.id;
}
