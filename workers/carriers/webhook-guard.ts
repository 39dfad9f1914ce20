import type { Context } from "hono";
import type { AppEnv } from "../http/context.ts";
import { readBoundedBytes } from "../shared/bounded-body.ts";
import type { Carrier } from "../shared/db/schema.ts";
import { metrics } from "../shared/observability/metrics.ts";
import { requireSettings } from "../shared/settings.ts";
import { compileAllowlist, type IpAllowlist } from "./ip-allowlist.ts";
import { type AccountClaim, failureBudgetKey, isBlocked, spendFailure, withinAccountCeiling } from "./webhook-budgets.ts";

/**
 * The four layers every carrier request passes, in order: (1) budgets (a source that spent its failure budget is
 * refused before anything is verified; a verified request counts against its account's ceiling:
 * `webhook-budgets.ts`), (2) the carrier's IP allowlist, (3) the carrier's signature, (4) freshness (Telnyx
 * timestamp; Twilio replays are de-duplicated by the call's object). Layers 1–2 and the rejections are here; each
 * carrier's `guard.ts` adds its signature and freshness, refusing through the gate so every refusal before
 * verification is counted. A rejection writes nothing, is logged as a security event naming its layer and the
 * route (its template, never the path: a media path can carry a credential). Answers follow carrier conventions:
 * 429, 403 for a bad or missing signature, 400 for a malformed request.
 */
export const MAX_WEBHOOK_BYTES = 64 * 1024;

export interface CarrierRequest {
  rawBody: string;
  /** Twilio form fields (or query fields for GET); empty for Telnyx and WebSocket upgrades. */
  params: Record<string, string | string[]>;
  /** A digest of what the signature covers, where the carrier's signature does not cover a unique event id. */
  signedDigest?: string;
}

export type CarrierEnv = AppEnv & { Variables: { carrierRequest: CarrierRequest } };

type Layer = "rate_limit" | "ip_allowlist" | "signature" | "freshness" | "malformed" | "media_credential";

export function reject(c: Context<CarrierEnv>, carrier: Carrier, layer: Layer, reason: string, status: 400 | 403 | 413 | 429): Response {
  metrics.count("webhook_requests_total", { carrier, outcome: "rejected" });
  metrics.count("webhook_rejected_total", { carrier, layer });
  c.get("log").warn("security.webhook_rejected", { carrier, layer, reason, ip: c.get("clientIp"), route: c.req.routePath });
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

/**
 * The body as text, or null when it is larger than a webhook can be. The bound holds while the body streams in (a
 * chunked body declares no length, and a declared one can lie): reading stops, and the rest is never read, as soon
 * as it is passed — before any signature is checked.
 */
export async function readBody(c: Context<CarrierEnv>): Promise<string | null> {
  const bytes = await readBoundedBytes(c.req.raw, MAX_WEBHOOK_BYTES);
  return bytes && new TextDecoder().decode(bytes);
}

/** A request that passed layers 1–2; its carrier's own layers refuse through it. */
export interface Gate {
  /** Refuses the unverified request, counting it against its source's failure budget (429 once that is spent). */
  refuse(layer: Exclude<Layer, "rate_limit">, reason: string, status: 400 | 403 | 413): Promise<Response>;
}

/**
 * Layers 1 and 2 for a request not yet verified: the refusal, or the gate for the carrier's own layers. `claim` is
 * the account the request says it is for (see `AccountClaim`). `allowlist` is the carrier's CIDRs from its settings,
 * already checked by `requireSettings`: a malformed one is a ConfigurationError (503), never an open door.
 */
export async function passesNetworkLayers(
  c: Context<CarrierEnv>,
  carrier: Carrier,
  allowlist: readonly string[],
  claim: AccountClaim,
): Promise<Response | Gate> {
  const budgetKey = failureBudgetKey(carrier, c.get("clientIp"), claim);
  if (isBlocked(budgetKey)) return reject(c, carrier, "rate_limit", "failure budget spent", 429);
  const gate: Gate = {
    async refuse(layer, reason, status) {
      if (await spendFailure(c.env, budgetKey)) return reject(c, carrier, "rate_limit", `failure budget spent (${layer})`, 429);
      return reject(c, carrier, layer, reason, status);
    },
  };
  const list = allowlistFor(allowlist);
  if (list.enabled && !list.allows(c.get("clientIp"))) return gate.refuse("ip_allowlist", "source IP not allowed", 403);
  return gate;
}

/**
 * Layer 1 for a verified request: its carrier account's ceiling; a response when that is reached. The last layer a
 * request passes, so a pass is where it counts as accepted.
 */
export async function overAccountCeiling(c: Context<CarrierEnv>, carrier: Carrier, account: string): Promise<Response | null> {
  if (await withinAccountCeiling(c.env, carrier, account)) {
    metrics.count("webhook_requests_total", { carrier, outcome: "accepted" });
    return null;
  }
  return reject(c, carrier, "rate_limit", "account ceiling", 429);
}
