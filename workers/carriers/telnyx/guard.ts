import type { MiddlewareHandler } from "hono";
import { requireSettings } from "../../shared/settings.ts";
import { verifyMediaCredential } from "../media-credential.ts";
import { type CarrierEnv, passesNetworkLayers, readBody, reject } from "../webhook-guard.ts";
import { verifyTelnyxSignature } from "./signature.ts";

/**
 * Telnyx's layers 3–4: the Ed25519 signature over `timestamp|body` and the timestamp's freshness. A media upgrade
 * carries no signature; it presents the call's media credential in its path, checked here, so a refusal never
 * reaches the call's object.
 */
export function telnyxGuard(options: { upgrade?: boolean } = {}): MiddlewareHandler<CarrierEnv> {
  return async (c, next) => {
    const settings = requireSettings(c.env, "telnyx");
    const blocked = await passesNetworkLayers(c, "telnyx", settings.TELNYX_IP_ALLOWLIST);
    if (blocked) return blocked;
    if (options.upgrade) {
      const valid = await verifyMediaCredential(settings.MEDIA_STREAM_SECRET, c.req.param("sessionId") ?? "", c.req.param("credential"));
      if (!valid) return reject(c, "telnyx", "media_credential", "missing or wrong media credential", 403);
      c.set("carrierRequest", { rawBody: "", params: {} });
      return next();
    }
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
