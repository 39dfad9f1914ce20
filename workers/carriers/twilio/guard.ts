import type { MiddlewareHandler } from "hono";
import { requireSettings } from "../../shared/settings.ts";
import { accountClaim } from "../webhook-budgets.ts";
import { type CarrierEnv, overAccountCeiling, passesNetworkLayers, publicUrlOf, readBody } from "../webhook-guard.ts";
import { parseTwilioForm, signedContentDigest, verifyTwilioJsonSignature, verifyTwilioSignature } from "./signature.ts";

/**
 * Twilio's layers 3–4: `X-Twilio-Signature` over the public URL and the form fields (or the JSON body). A media
 * upgrade is signed over its wss URL only; the call's credential then arrives in the stream's `start`. The fields'
 * `AccountSid` (Twilio fills it in) is the request's account claim before the signature is checked, and its account
 * after; a request without one (an upgrade, a JSON body) is the deployment's account once verified.
 */
export function twilioGuard(options: { upgrade?: boolean } = {}): MiddlewareHandler<CarrierEnv> {
  return async (c, next) => {
    const settings = requireSettings(c.env, "twilio");
    const rawBody = options.upgrade ? "" : await readBody(c);
    const isJson = (c.req.header("content-type") ?? "").includes("application/json");
    const isForm = c.req.method === "POST" && !isJson;
    const params = isForm && rawBody !== null ? parseTwilioForm(rawBody) : {};
    const fields = c.req.method === "GET" && !options.upgrade ? Object.fromEntries(new URL(c.req.url).searchParams) : params;
    const claimed = fields.AccountSid;
    const gate = await passesNetworkLayers(c, "twilio", settings.TWILIO_IP_ALLOWLIST, accountClaim(claimed, settings.TWILIO_ACCOUNT_SID));
    if (gate instanceof Response) return gate;
    if (rawBody === null) return gate.refuse("malformed", "body too large", 413);
    const signature = c.req.header("X-Twilio-Signature") ?? null;
    if (!signature) return gate.refuse("signature", "missing X-Twilio-Signature", options.upgrade ? 403 : 400);

    const url = publicUrlOf(c, options.upgrade ? "wss" : "https");
    const valid = isJson
      ? await verifyTwilioJsonSignature({ authToken: settings.TWILIO_AUTH_TOKEN, url, rawBody, signature })
      : await verifyTwilioSignature({ authToken: settings.TWILIO_AUTH_TOKEN, url, params, signature });
    if (!valid) return gate.refuse("signature", "signature mismatch", 403);
    const limited = await overAccountCeiling(c, "twilio", typeof claimed === "string" ? claimed : settings.TWILIO_ACCOUNT_SID);
    if (limited) return limited;
    // An upgrade is one connection, not an event to de-duplicate: no digest.
    const signedDigest = options.upgrade ? undefined : await signedContentDigest(url, params);
    c.set("carrierRequest", { rawBody, params: fields, signedDigest });
    await next();
  };
}
