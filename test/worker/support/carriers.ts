import { env, exports } from "cloudflare:workers";
import { getExpectedTwilioSignature } from "twilio/lib/webhooks/webhooks";

/**
 * A carrier's side of a webhook, for tests: requests signed the way the carriers sign them. Twilio signatures come
 * from the twilio package itself (the oracle); Telnyx ones from the Ed25519 key whose public half the test Worker
 * trusts (protocols.md §4: seed bytes 0x00..0x1f).
 */
export const BASE = "https://switchboard.test";

export function twilioSignature(url: string, params: Record<string, string>): string {
  return getExpectedTwilioSignature(env.TWILIO_AUTH_TOKEN, url, params);
}

export const randomCallSid = () => `CA${crypto.randomUUID().replace(/-/g, "")}`;
export const randomE164 = () => `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;

export async function postTwilio(path: string, params: Record<string, string>, options: { ip?: string; signature?: string | null; headers?: Record<string, string> } = {}) {
  const url = `${BASE}${path}`;
  const headers: Record<string, string> = {
    "Content-Type": "application/x-www-form-urlencoded",
    "CF-Connecting-IP": options.ip ?? "203.0.113.10",
    ...options.headers,
  };
  const signature = options.signature === undefined ? twilioSignature(url, params) : options.signature;
  if (signature !== null) headers["X-Twilio-Signature"] = signature;
  return exports.default.fetch(url, { method: "POST", headers, body: new URLSearchParams(params).toString() });
}

export function twilioCallParams(callSid: string, to: string, status: string, extra: Record<string, string> = {}) {
  return { CallSid: callSid, AccountSid: env.TWILIO_ACCOUNT_SID, From: "+14155550100", To: to, CallStatus: status, Direction: "inbound", ApiVersion: "2010-04-01", ...extra };
}

/** The stream URL and token a TwiML `<Connect><Stream>` answer carries. */
export function parseStreamTwiml(twiml: string): { url: string; token: string } {
  const url = /<Stream url="([^"]+)"/.exec(twiml)?.[1];
  const token = /<Parameter name="token" value="([^"]+)"/.exec(twiml)?.[1];
  if (!url || !token) throw new Error(`no stream in TwiML: ${twiml}`);
  return { url: url.replace(/&amp;/g, "&"), token };
}

/** Opens a carrier media socket through the real Worker, as Twilio does (signed upgrade). */
export async function openTwilioMedia(streamUrl: string, options: { signature?: string | null } = {}) {
  const httpsUrl = streamUrl.replace(/^wss:/, "https:");
  const headers: Record<string, string> = { Upgrade: "websocket", "CF-Connecting-IP": "203.0.113.10" };
  const signature = options.signature === undefined ? twilioSignature(streamUrl, {}) : options.signature;
  if (signature !== null) headers["X-Twilio-Signature"] = signature;
  return exports.default.fetch(httpsUrl, { headers });
}

const TELNYX_SEED = Uint8Array.from({ length: 32 }, (_, i) => i);
let telnyxKey: Promise<CryptoKey> | undefined;

function telnyxPrivateKey(): Promise<CryptoKey> {
  // PKCS#8 wrapping of a raw Ed25519 seed: fixed 16-byte prefix, then the 32 seed bytes.
  const prefix = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
  telnyxKey ??= crypto.subtle.importKey("pkcs8", new Uint8Array([...prefix, ...TELNYX_SEED]), { name: "Ed25519" }, false, ["sign"]) as Promise<CryptoKey>;
  return telnyxKey;
}

export async function postTelnyx(body: unknown, options: { ip?: string; timestamp?: number; tamper?: boolean; rawBody?: string } = {}) {
  const raw = options.rawBody ?? JSON.stringify(body);
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const signed = await crypto.subtle.sign("Ed25519", await telnyxPrivateKey(), new TextEncoder().encode(`${timestamp}|${raw}`));
  const signature = btoa(String.fromCharCode(...new Uint8Array(signed)));
  return exports.default.fetch(`${BASE}/telephony/telnyx/webhook`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "CF-Connecting-IP": options.ip ?? "192.76.120.130",
      "telnyx-signature-ed25519": signature,
      "telnyx-timestamp": timestamp,
    },
    body: options.tamper ? raw.replace("call", "cal1") : raw,
  });
}

export function telnyxEnvelope(eventType: string, payload: Record<string, unknown>, id = crypto.randomUUID()) {
  return { data: { id, event_type: eventType, occurred_at: new Date().toISOString(), record_type: "event", payload } };
}

export async function d1Count(sql: string, ...bindings: unknown[]): Promise<number> {
  const row = await env.DB.prepare(sql).bind(...bindings).first<{ n: number }>();
  return row?.n ?? 0;
}
