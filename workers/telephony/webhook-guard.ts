import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../http/context.ts";
import { increment } from "../shared/counters.ts";
import type { Carrier } from "../shared/db/schema.ts";
import { requireSettings } from "../shared/settings.ts";
import { compileAllowlist, type IpAllowlist } from "./security/ip-allowlist.ts";
import { verifyTelnyxSignature } from "./security/telnyx-signature.ts";
import { parseTwilioForm, type TwilioParams, verifyTwilioJsonSignature, verifyTwilioSignature } from "./security/twilio-signature.ts";

/**
 * The four layers every carrier request passes, in order: (1) rate limit per source IP, (2) the carrier's IP
 * allowlist, (3) the carrier's signature, (4) freshness (Telnyx timestamp; Twilio replays are de-duplicated by
 * the call's object). A rejection writes nothing, is logged as a security event naming its layer, and is counted.
 * Answers follow carrier conventions: 429, 403 for a bad or missing signature, 400 for a malformed request.
 */
export const MAX_WEBHOOK_BYTES = 64 * 1024;

export interface CarrierRequest {
  rawBody: string;
  /** Twilio form fields (or query fields for GET); empty for Telnyx and WebSocket upgrades. */
  params: TwilioParams;
}

export type CarrierEnv = AppEnv & { Variables: { carrierRequest: CarrierRequest } };

type Layer = "rate_limit" | "ip_allowlist" | "signature" | "freshness" | "malformed";

export function reject(c: Context<CarrierEnv>, carrier: Carrier, layer: Layer, reason: string, status: 400 | 403 | 413 | 429): Response {
  increment("webhook_rejected_total", { carrier, layer });
  c.get("log").warn("security.webhook_rejected", { carrier, layer, reason, ip: c.get("clientIp"), path: c.req.path });
  const headers: Record<string, string> = { "Content-Type": "text/plain" };
  if (status === 429) headers["Retry-After"] = "60";
  return c.body(status === 429 ? "Too Many Requests" : status === 403 ? "Forbidden" : "Bad Request", status, headers);
}

const allowlists = new Map<string, IpAllowlist>();
function allowlistFor(cidrs: readonly string[]): IpAllowlist {
  const key = cidrs.join(",");
  let list = allowlists.get(key);
  if (!list) {
    list = compileAllowlist(cidrs);
    allowlists.set(key, list);
  }
  return list;
}

/** The public URL the carrier signed: built from PUBLIC_BASE_URL, never from the (proxied) request. */
export function publicUrlOf(c: Context<CarrierEnv>, scheme: "https" | "wss" = "https"): string {
  const base = new URL(requireSettings(c.env, "publicUrls").PUBLIC_BASE_URL);
  const request = new URL(c.req.url);
  const protocol = scheme === "wss" ? (base.protocol === "https:" ? "wss:" : "ws:") : base.protocol;
  return `${protocol}//${base.host}${request.pathname}${request.search}`;
}

async function readBody(c: Context<CarrierEnv>): Promise<string | null> {
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > MAX_WEBHOOK_BYTES) return null;
  const text = await c.req.text();
  return new TextEncoder().encode(text).length > MAX_WEBHOOK_BYTES ? null : text;
}

async function passesNetworkLayers(c: Context<CarrierEnv>, carrier: Carrier): Promise<Response | null> {
  const ip = c.get("clientIp");
  const { success } = await c.env.WEBHOOK_LIMITER.limit({ key: `${carrier}:${ip}` });
  if (!success) return reject(c, carrier, "rate_limit", "per-IP limit", 429);
  // A malformed allowlist throws a ConfigurationError here (503): fail closed, never open to every address.
  const allowlist = allowlistFor(
    carrier === "twilio" ? requireSettings(c.env, "twilio").TWILIO_IP_ALLOWLIST : requireSettings(c.env, "telnyx").TELNYX_IP_ALLOWLIST,
  );
  if (allowlist.enabled && !allowlist.allows(ip)) return reject(c, carrier, "ip_allowlist", "source IP not allowed", 403);
  return null;
}

export function twilioGuard(options: { upgrade?: boolean } = {}): MiddlewareHandler<CarrierEnv> {
  return async (c, next) => {
    const blocked = await passesNetworkLayers(c, "twilio");
    if (blocked) return blocked;
    const settings = requireSettings(c.env, "twilio");
    const signature = c.req.header("X-Twilio-Signature") ?? null;
    if (!signature) return reject(c, "twilio", "signature", "missing X-Twilio-Signature", options.upgrade ? 403 : 400);

    const rawBody = options.upgrade ? "" : await readBody(c);
    if (rawBody === null) return reject(c, "twilio", "malformed", "body too large", 413);
    const url = publicUrlOf(c, options.upgrade ? "wss" : "https");
    const isJson = (c.req.header("content-type") ?? "").includes("application/json");
    const isForm = c.req.method === "POST" && !isJson;
    const params = isForm ? parseTwilioForm(rawBody) : {};
    const valid = isJson
      ? await verifyTwilioJsonSignature({ authToken: settings.TWILIO_AUTH_TOKEN, url, rawBody, signature })
      : await verifyTwilioSignature({ authToken: settings.TWILIO_AUTH_TOKEN, url, params, signature });
    if (!valid) return reject(c, "twilio", "signature", "signature mismatch", 403);
    const fields = c.req.method === "GET" && !options.upgrade ? Object.fromEntries(new URL(c.req.url).searchParams) : params;
    c.set("carrierRequest", { rawBody, params: fields });
    await next();
  };
}

export function telnyxGuard(options: { upgrade?: boolean } = {}): MiddlewareHandler<CarrierEnv> {
  return async (c, next) => {
    const blocked = await passesNetworkLayers(c, "telnyx");
    if (blocked) return blocked;
    if (options.upgrade) {
      // Media upgrades carry no signature: the unguessable path token is checked by the call's object.
      c.set("carrierRequest", { rawBody: "", params: {} });
      return next();
    }
    const settings = requireSettings(c.env, "telnyx");
    const rawBody = await readBody(c);
    if (rawBody === null) return reject(c, "telnyx", "malformed", "body too large", 413);
    const verdict = await verifyTelnyxSignature({
      publicKey: settings.TELNYX_PUBLIC_KEY,
      rawBody,
      signature: c.req.header("telnyx-signature-ed25519") ?? null,
      timestamp: c.req.header("telnyx-timestamp") ?? null,
      nowSeconds: Math.floor(Date.now() / 1000),
      maxSkewSeconds: settings.WEBHOOK_MAX_SKEW_SECONDS,
    });
    if (!verdict.ok) {
      const layer = verdict.reason === "stale" ? "freshness" : "signature";
      return reject(c, "telnyx", layer, verdict.reason, 403);
    }
    c.set("carrierRequest", { rawBody, params: {} });
    await next();
  };
}
