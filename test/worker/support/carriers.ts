import { env, exports } from "cloudflare:workers";
import { getExpectedTwilioSignature } from "twilio/lib/webhooks/webhooks";

/**
 * A carrier's side of a webhook, for tests: requests signed the way the carriers sign them. Twilio signatures come
 * from the twilio package itself (the oracle); Telnyx ones from the Ed25519 key whose public half the test Worker
 * trusts (seed bytes 0x00..0x1f).
 */
export const BASE = "https://switchboard.test";

export function twilioSignature(url: string, params: Record<string, string>): string {
  return getExpectedTwilioSignature(env.TWILIO_AUTH_TOKEN, url, params);
}

export const randomCallSid = () => `CA${crypto.randomUUID().replace(/-/g, "")}`;
export const randomE164 = () => `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;

export async function postTwilio(
  path: string,
  params: Record<string, string>,
  options: { ip?: string; signature?: string | null; headers?: Record<string, string> } = {},
) {
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
  return {
    CallSid: callSid,
    AccountSid: env.TWILIO_ACCOUNT_SID,
    From: "+14155550100",
    To: to,
    CallStatus: status,
    Direction: "inbound",
    ApiVersion: "2010-04-01",
    ...extra,
  };
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
  telnyxKey ??= crypto.subtle.importKey("pkcs8", new Uint8Array([...prefix, ...TELNYX_SEED]), { name: "Ed25519" }, false, [
    "sign",
  ]) as Promise<CryptoKey>;
  return telnyxKey;
}

export async function postTelnyx(
  body: unknown,
  options: { ip?: string; timestamp?: number; tamper?: boolean; rawBody?: string; headers?: Record<string, string> } = {},
) {
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
      ...options.headers,
    },
    body: options.tamper ? raw.replace("call", "cal1") : raw,
  });
}

export function telnyxEnvelope(eventType: string, payload: Record<string, unknown>, id = crypto.randomUUID()) {
  return { data: { id, event_type: eventType, occurred_at: new Date().toISOString(), record_type: "event", payload } };
}

export async function d1Count(sql: string, ...bindings: unknown[]): Promise<number> {
  const row = await env.DB.prepare(sql)
    .bind(...bindings)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

// ---- Fake carrier APIs (test/simulators/carriers) seen from inside workerd: their /__sim control API, and the
// carrier's own side of a call (ending it "at the carrier", as a caller hanging up would). ----

export interface SimRequest {
  carrier: "twilio" | "telnyx";
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  callId?: string;
  to?: string;
  status?: number;
  note?: string;
}

export async function simRequests(filter: {
  carrier?: "twilio" | "telnyx";
  callId?: string;
  to?: string;
  path?: string;
}): Promise<SimRequest[]> {
  const query = new URLSearchParams(Object.entries(filter).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const response = await fetch(`${env.CARRIER_SIM_CONTROL_URL}/__sim/requests?${query}`);
  if (!response.ok) throw new Error(`sim requests: ${response.status}`);
  return response.json();
}

/** Injects a fault; key it by something unique to the test (the dialled number, the call id). */
export async function simFault(fault: {
  match: { to?: string; callId?: string; path?: string };
  status?: number;
  times?: number;
  delayMs?: number;
  body?: unknown;
}) {
  const response = await fetch(`${env.CARRIER_SIM_CONTROL_URL}/__sim/faults`, { method: "PUT", body: JSON.stringify(fault) });
  if (response.status !== 204) throw new Error(`sim fault: ${response.status} ${await response.text()}`);
}

/** Says whether the fake carriers' account holds `e164` (every number does until a test says otherwise). */
export async function simNumberOnAccount(e164: string, onAccount: boolean) {
  const response = await fetch(`${env.CARRIER_SIM_CONTROL_URL}/__sim/numbers`, {
    method: "PUT",
    body: JSON.stringify({ e164, onAccount }),
  });
  if (response.status !== 204) throw new Error(`sim numbers: ${response.status} ${await response.text()}`);
}

export async function simClearFaults(match: { to?: string; callId?: string; path?: string }) {
  const query = new URLSearchParams(Object.entries(match).filter((entry): entry is [string, string] => entry[1] !== undefined));
  await fetch(`${env.CARRIER_SIM_CONTROL_URL}/__sim/faults?${query}`, { method: "DELETE" });
}

/** Polls until `probe` returns a value (asynchronous work such as a Telnyx `answer` sent from waitUntil). */
export async function eventually<T>(probe: () => Promise<T | undefined | null | false>, attempts = 100): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = await probe();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`condition not met after ${attempts} attempts`);
}

/** Ends a call at the fake Twilio API directly, the way Twilio's side would (the platform is not told). */
export async function endTwilioCallAtCarrier(callSid: string, status: "completed" | "canceled" = "completed") {
  return fetch(`${env.TWILIO_API_BASE}/2010-04-01/Accounts/${env.TWILIO_ACCOUNT_SID}/Calls/${callSid}.json`, {
    method: "POST",
    headers: {
      Authorization: `Basic ${btoa(`${env.TWILIO_ACCOUNT_SID}:${env.TWILIO_AUTH_TOKEN}`)}`,
      "Content-Type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ Status: status }).toString(),
  });
}

/** Ends a call at the fake Telnyx API directly (a command id of the test's own, so the platform's are untouched). */
export async function endTelnyxCallAtCarrier(callControlId: string) {
  return fetch(`${env.TELNYX_API_BASE}/v2/calls/${encodeURIComponent(callControlId)}/actions/hangup`, {
    method: "POST",
    headers: { Authorization: `Bearer ${env.TELNYX_API_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ command_id: `test-hangup-${crypto.randomUUID()}` }),
  });
}

export const randomCallControlId = () => `v3:${crypto.randomUUID()}`;

/** A Telnyx media upgrade through the real Worker (unsigned; the media credential is in the path). */
export function openTelnyxMedia(streamUrl: string, ip = "192.76.120.130") {
  return exports.default.fetch(streamUrl.replace(/^wss:/, "https:"), { headers: { Upgrade: "websocket", "CF-Connecting-IP": ip } });
}

/** Resolves with the close code the server sends (the vitest timeout bounds the wait). */
export function closeCodeOf(socket: WebSocket): Promise<number> {
  return new Promise((resolve) => socket.addEventListener("close", (event) => resolve(event.code), { once: true }));
}

export function twilioStart(callSid: string, token: string, streamSid = `MZ${crypto.randomUUID().replace(/-/g, "")}`) {
  return JSON.stringify({
    event: "start",
    sequenceNumber: "1",
    streamSid,
    start: {
      accountSid: env.TWILIO_ACCOUNT_SID,
      streamSid,
      callSid,
      tracks: ["inbound"],
      customParameters: { token },
      mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
    },
  });
}
