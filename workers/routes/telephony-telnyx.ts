import { type Context, Hono } from "hono";
import { routeForNumber, sessionForCarrierCall } from "../shared/db/directory.ts";
import { requireSettings } from "../shared/settings.ts";
import { forwardMediaUpgrade } from "../telephony/media-upgrade.ts";
import { callObject, deriveSessionId, isSessionId } from "../telephony/session-routing.ts";
import { TelnyxCallControl } from "../telephony/telnyx/call-control.ts";
import { telnyxEvent } from "../telephony/telnyx/webhook-events.ts";
import { type CarrierEnv, reject, telnyxGuard } from "../telephony/webhook-guard.ts";

/** Telnyx's routes: Call Control webhooks go to the call's object; media upgrades carry the call's path token. */
async function webhook(c: Context<CarrierEnv>) {
  let body: unknown;
  try {
    body = JSON.parse(c.get("carrierRequest").rawBody);
  } catch {
    return reject(c, "telnyx", "malformed", "body is not JSON", 400);
  }
  const parsed = telnyxEvent(body);
  if (!parsed.ok) return reject(c, "telnyx", "malformed", parsed.problem, 400);
  const event = parsed.event;
  const correlationId = c.get("correlationId");
  const log = c.get("log");

  if (event.name === "call.initiated" && event.direction === "inbound" && !event.sessionHint) {
    const number = event.to ? await routeForNumber(c.env, event.to) : null;
    if (number?.carrier !== "telnyx") {
      log.warn("call.unknown_number", { carrier: "telnyx", to: event.to });
      const rejection = new TelnyxCallControl(requireSettings(c.env, "telnyx"))
        .reject(event.carrierCallId, `reject-${event.carrierCallId}`)
        .catch((error: unknown) => log.warn("carrier.reject_failed", { error }));
      c.executionCtx.waitUntil(rejection);
      return c.json({ received: true }, 200);
    }
    const sessionId = await deriveSessionId("telnyx", event.carrierCallId);
    await callObject(c.env, sessionId).openCall({
      sessionId,
      tenantId: number.tenantId,
      correlationId,
      event,
      route: { provider: number.provider, instructions: number.instructions, codec: number.codec },
    });
    return c.json({ received: true }, 200);
  }

  const sessionId =
    (isSessionId(event.sessionHint) ? event.sessionHint : undefined) ??
    (await sessionForCarrierCall(c.env, "telnyx", event.carrierCallId))?.sessionId ??
    (await deriveSessionId("telnyx", event.carrierCallId));
  const outcome = await callObject(c.env, sessionId).applyCarrierEvent(event, correlationId);
  log.info("carrier.event", { carrier: "telnyx", event: event.name, outcome, sessionId });
  return c.json({ received: true }, 200);
}

export const telnyxRoutes = new Hono<CarrierEnv>()
  .post("/telephony/telnyx/webhook", telnyxGuard(), webhook)
  .get("/telephony/telnyx/media/:sessionId/:token", telnyxGuard({ upgrade: true }), (c) => forwardMediaUpgrade(c, c.req.param("sessionId")))
  .get("/telephony/telnyx/media/:sessionId", telnyxGuard({ upgrade: true }), (c) => forwardMediaUpgrade(c, c.req.param("sessionId")));
