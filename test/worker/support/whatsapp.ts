import { env, exports } from "cloudflare:workers";
import { database } from "../../../workers/shared/db/client.ts";
import { phoneNumbers } from "../../../workers/shared/db/schema.ts";
import { TEST_WHATSAPP_APP_SECRET } from "../../support/test-settings.ts";
import { eventually } from "./carriers.ts";

/**
 * Meta's side of the WhatsApp webhook, for tests: deliveries signed with the test app secret (X-Hub-Signature-256
 * over the exact bytes sent), and the simulated Cloud API's record of what the platform sent back.
 */
const URL_ = "https://switchboard.test/webhooks/whatsapp";

export async function whatsappSignature(body: string, secret = TEST_WHATSAPP_APP_SECRET): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body)));
  return `sha256=${[...mac].map((byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

/** POSTs `body` as Meta would; `signature: null` sends none. */
export async function postWhatsApp(body: string, options: { signature?: string | null } = {}): Promise<Response> {
  const headers: Record<string, string> = { "Content-Type": "application/json", "CF-Connecting-IP": "203.0.113.77" };
  const signature = options.signature === undefined ? await whatsappSignature(body) : options.signature;
  if (signature !== null) headers["X-Hub-Signature-256"] = signature;
  return exports.default.fetch(URL_, { method: "POST", headers, body });
}

export const verifyWhatsApp = (query: Record<string, string>) => exports.default.fetch(`${URL_}?${new URLSearchParams(query)}`);

/** A unique WhatsApp id per test (digits of an Indian mobile number). */
export const randomWaId = () => `9198${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`;
/** A unique message id shaped like Meta's. */
export const randomMessageId = () => `wamid.TEST${crypto.randomUUID().replace(/-/g, "")}`;

/** The shop's WhatsApp business number, owned by `tenantId` (the webhook finds the tenant by it). */
export async function businessNumber(tenantId: string): Promise<string> {
  const digits = `1555${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
  await database(env.DB)
    .insert(phoneNumbers)
    .values({ id: crypto.randomUUID(), tenantId, e164: `+${digits}`, carrier: "twilio", createdAt: Date.now() });
  return digits;
}

export function textDelivery(to: string, from: string, body: string, id = randomMessageId()): string {
  return delivery(to, { from, id, timestamp: String(Math.floor(Date.now() / 1000)), type: "text", text: { body } });
}

/** Meta's delivery receipts (`statuses`) for messages the platform sent from `to`, with no message. */
export function receiptDelivery(to: string, statuses: Array<Record<string, unknown>>): string {
  const body = JSON.parse(delivery(to, {})) as { entry: Array<{ changes: Array<{ value: Record<string, unknown> }> }> };
  const value = body.entry[0]!.changes[0]!.value;
  delete value.messages;
  delete value.contacts;
  value.statuses = statuses;
  return JSON.stringify(body);
}

export function delivery(to: string, message: Record<string, unknown>): string {
  return JSON.stringify({
    object: "whatsapp_business_account",
    entry: [
      {
        id: "102290129340398",
        changes: [
          {
            field: "messages",
            value: {
              messaging_product: "whatsapp",
              metadata: { display_phone_number: to, phone_number_id: "106540352242922" },
              contacts: [{ profile: { name: "Test" }, wa_id: message.from }],
              messages: [message],
            },
          },
        ],
      },
    ],
  });
}

export interface SentWhatsApp {
  id: string;
  to: string;
  body: string;
}

export async function sentTo(waId: string): Promise<SentWhatsApp[]> {
  const response = await fetch(`${env.WHATSAPP_SIM_CONTROL_URL}/__sim/whatsapp/messages?to=${waId}`);
  return ((await response.json()) as { messages: SentWhatsApp[] }).messages;
}

/** Waits for the platform's `count`th reply to `waId` (replies are sent after the webhook's 200) and returns it. */
export async function replyNumber(waId: string, count: number): Promise<string> {
  const sent = await eventually(async () => {
    const messages = await sentTo(waId);
    return messages.length >= count ? messages : null;
  }, 400);
  return sent[count - 1]!.body;
}

export async function scriptModel(text: string, output: unknown, usage?: { input: number; output: number }) {
  const response = await fetch(`${env.WHATSAPP_SIM_CONTROL_URL}/__sim/openai/scripts`, {
    method: "POST",
    body: JSON.stringify({ text, output, usage }),
  });
  if (response.status !== 204) throw new Error(`sim script: ${response.status}`);
}

export async function modelRequests(text: string): Promise<Array<{ text: string; body: Record<string, unknown>; scripted: boolean }>> {
  const response = await fetch(`${env.WHATSAPP_SIM_CONTROL_URL}/__sim/openai/requests?text=${encodeURIComponent(text)}`);
  return ((await response.json()) as { requests: Array<{ text: string; body: Record<string, unknown>; scripted: boolean }> }).requests;
}
