import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import { requireSettings } from "../../shared/settings.ts";
import { verifyMediaCredential } from "../media-credential.ts";
import { accountClaim } from "../webhook-budgets.ts";
import { type CarrierEnv, overAccountCeiling, passesNetworkLayers, readBody } from "../webhook-guard.ts";
import { verifyTelnyxSignature } from "./signature.ts";

/** The Call Control connection a webhook names (Telnyx fills it in); read before the signature only to count. */
const connectionOf = z.object({ data: z.object({ payload: z.object({ connection_id: z.string() }) }) });

function connectionIdOf(rawBody: string | null): string | undefined {
  if (rawBody === null) return undefined;
  try {
    const parsed = connectionOf.safeParse(JSON.parse(rawBody));
    return parsed.success ? parsed.data.data.payload.connection_id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Telnyx's layers 3–4: the Ed25519 signature over `timestamp|body` and the timestamp's freshness. A media upgrade
 * carries no signature; it presents the call's media credential in its path, checked here, so a refusal never
 * reaches the call's object. The payload's `connection_id` is the request's account claim before the signature is
 * checked, and its account after; without one (an upgrade, an event that names none) the deployment's connection.
 */
export function telnyxGuard(options: { upgrade?: boolean } = {}): MiddlewareHandler<CarrierEnv> {
  return async (c, next) => {
    const settings = requireSettings(c.env, "telnyx");
    const rawBody = options.upgrade ? "" : await readBody(c);
    const connectionId = options.upgrade ? undefined : connectionIdOf(rawBody);
    const claim = accountClaim(connectionId, settings.TELNYX_CONNECTION_ID);
    const gate = await passesNetworkLayers(c, "telnyx", settings.TELNYX_IP_ALLOWLIST, claim);
    if (gate instanceof Response) return gate;
    if (options.upgrade) {
      const valid = await verifyMediaCredential(settings.MEDIA_STREAM_SECRET, c.req.param("sessionId") ?? "", c.req.param("credential"));
      if (!valid) return gate.refuse("media_credential", "missing or wrong media credential", 403);
    } else {
      if (rawBody === null) return gate.refuse("malformed", "body too large", 413);
      const verdict = await verifyTelnyxSignature({
        publicKey: settings.TELNYX_PUBLIC_KEY,
        rawBody,
        signature: c.req.header("telnyx-signature-ed25519") ?? null,
        timestamp: c.req.header("telnyx-timestamp") ?? null,
        nowSeconds: Math.floor(Date.now() / 1000),
        maxSkewSeconds: settings.WEBHOOK_MAX_SKEW_SECONDS,
      });
      if (!verdict.ok) return gate.refuse(verdict.reason === "stale" ? "freshness" : "signature", verdict.reason, 403);
    }
    const limited = await overAccountCeiling(c, "telnyx", connectionId ?? settings.TELNYX_CONNECTION_ID);
    if (limited) return limited;
    c.set("carrierRequest", { rawBody: rawBody ?? "", params: {} });
    await next();
  };
}
