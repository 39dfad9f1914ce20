import { type Context, Hono } from "hono";
import { callRouteOf, routeForNumber } from "../../shared/db/directory.ts";
import { metrics } from "../../shared/observability/metrics.ts";
import { callObject, isSessionId } from "../../shared/session-ids.ts";
import { requireSettings } from "../../shared/settings.ts";
import { mediaCredential } from "../media-credential.ts";
import { forwardMediaUpgrade } from "../media-upgrade.ts";
import { deliverCarrierEvent, deriveSessionId } from "../session-routing.ts";
import { type CarrierEnv, reject } from "../webhook-guard.ts";
import { twilioGuard } from "./guard.ts";
import { acknowledgementTwiml, busyTwiml, connectStreamTwiml, rejectionTwiml } from "./twiml.ts";
import { twilioUrls } from "./urls.ts";
import { twilioAmdEvent, twilioEvent } from "./webhook-events.ts";

/** Twilio's routes: the voice webhook answers TwiML, status callbacks go to the call's object, media upgrades too. */
const twiml = (c: Context<CarrierEnv>, body: string) => c.body(body, 200, { "Content-Type": "text/xml" });

/** `<Connect><Stream>` to the call's object, with the call's media credential as the stream's `token` parameter. */
async function streamTwiml(c: Context<CarrierEnv>, sessionId: string, consent: string | null): Promise<Response> {
  const credential = await mediaCredential(requireSettings(c.env, "twilio").MEDIA_STREAM_SECRET, sessionId);
  return twiml(c, connectStreamTwiml(twilioUrls(c.env).stream(sessionId), credential, consent));
}

function parsedEvent(c: Context<CarrierEnv>, parse = twilioEvent) {
  const hint = new URL(c.req.url).searchParams.get("sessionId");
  const { params, signedDigest } = c.get("carrierRequest");
  return parse(params, signedDigest ?? "", isSessionId(hint) ? hint : undefined);
}

async function voice(c: Context<CarrierEnv>) {
  const parsed = parsedEvent(c);
  if (!parsed.ok) return reject(c, "twilio", "malformed", parsed.problem, 400);
  const event = parsed.event;
  const correlationId = c.get("correlationId");

  if (event.sessionHint) {
    const result = await callObject(c.env, event.sessionHint).connectCall(event, correlationId);
    if (result.kind === "stream") return streamTwiml(c, result.sessionId, result.consent);
    if (result.kind === "duplicate") {
      metrics.count("webhook_requests_total", { carrier: "twilio", outcome: "duplicate" });
      return twiml(c, acknowledgementTwiml());
    }
    if (result.kind === "busy") return twiml(c, busyTwiml());
    return twiml(c, rejectionTwiml("This call has ended. Goodbye."));
  }

  const number = event.to ? await routeForNumber(c.env, event.to) : null;
  if (number?.carrier !== "twilio") {
    c.get("log").warn("call.unknown_number", { carrier: "twilio", to: event.to });
    return twiml(c, rejectionTwiml());
  }
  const sessionId = await deriveSessionId("twilio", event.carrierCallId);
  const result = await callObject(c.env, sessionId).openCall({
    sessionId,
    tenantId: number.tenantId,
    correlationId,
    event,
    route: callRouteOf(number),
  });
  if (result.kind === "ended") return twiml(c, rejectionTwiml("This call has ended. Goodbye."));
  if (result.kind === "duplicate") {
    metrics.count("webhook_requests_total", { carrier: "twilio", outcome: "duplicate" });
    return twiml(c, acknowledgementTwiml());
  }
  // Past the tenant's concurrency limit: the caller hears it, and Twilio ends the call.
  if (result.kind === "busy") return twiml(c, busyTwiml());
  return streamTwiml(c, sessionId, result.consent);
}

/** Status callbacks, and the answering-machine verdict (AsyncAmdStatusCallback), go to the call's object alike. */
async function status(c: Context<CarrierEnv>, parse = twilioEvent) {
  const parsed = parsedEvent(c, parse);
  if (!parsed.ok) return reject(c, "twilio", "malformed", parsed.problem, 400);
  const event = parsed.event;
  const { sessionId, outcome } = await deliverCarrierEvent(c.env, event, event.sessionHint, c.get("correlationId"));
  c.get("log").info("carrier.event", { carrier: "twilio", carrierEvent: event.name, outcome, sessionId });
  return c.body(null, 204);
}

export const twilioRoutes = new Hono<CarrierEnv>()
  .on(["GET", "POST"], "/telephony/twilio/voice", twilioGuard(), voice)
  .post("/telephony/twilio/status", twilioGuard(), (c) => status(c))
  .post("/telephony/twilio/amd", twilioGuard(), (c) => status(c, twilioAmdEvent))
  .get("/telephony/twilio/media/:sessionId", twilioGuard({ upgrade: true }), (c) =>
    forwardMediaUpgrade(c, "twilio", c.req.param("sessionId")),
  );
