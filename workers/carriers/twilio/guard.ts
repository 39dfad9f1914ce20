import type { MiddlewareHandler } from "hono";
import { requireSettings } from "../../shared/settings.ts";
import { type CarrierEnv, passesNetworkLayers, publicUrlOf, readBody, reject } from "../webhook-guard.ts";
import { parseTwilioForm, signedContentDigest, verifyTwilioJsonSignature, verifyTwilioSignature } from "./signature.ts";

/**
 * Twilio's layers 3–4: `X-Twilio-Signature` over the public URL and the form fields (or the JSON body). A media
 * upgrade is signed over its wss URL only; the call's credential then arrives in the stream's `start`.
 */
export function twilioGuard(options: { upgrade?: boolean } = {}): MiddlewareHandler<CarrierEnv> {
  return async (c, next) => {
    const settings = requireSettings(c.env, "twilio");
    const blocked = await passesNetworkLayers(c, "twilio", settings.TWILIO_IP_ALLOWLIST);
    if (blocked) return blocked;
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
    // An upgrade is one connection, not an event to de-duplicate: no digest.
    const signedDigest = options.upgrade ? undefined : await signedContentDigest(url, params);
    c.set("carrierRequest", { rawBody, params: fields, signedDigest });
    await next();
  };
}
