import { type Context, Hono } from "hono";
import { callRouteOf, routeForNumber } from "../../shared/db/directory.ts";
import { callObject, isSessionId } from "../../shared/session-ids.ts";
import { requireSettings } from "../../shared/settings.ts";
import { forwardMediaUpgrade } from "../media-upgrade.ts";
import { deliverCarrierEvent, deriveSessionId } from "../session-routing.ts";
import { type CarrierEnv, reject } from "../webhook-guard.ts";
import { TelnyxCallControl } from "./call-control.ts";
import { telnyxGuard } from "./guard.ts";
import { telnyxEvent } from "./webhook-events.ts";

/**
 * Telnyx's routes: Call Control webhooks go to the call's object; media upgrades present the call's media
 * credential in their path (the guard checks it; without one the upgrade is refused).
 */
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
      route: callRouteOf(number),
    });
    return c.json({ received: true }, 200);
  }

  const hint = isSessionId(event.sessionHint) ? event.sessionHint : undefined;
  const { sessionId, outcome } = await deliverCarrierEvent(c.env, event, hint, correlationId);
  log.info("carrier.event", { carrier: "telnyx", carrierEvent: event.name, outcome, sessionId });
  return c.json({ received: true }, 200);
}

export const telnyxRoutes = new Hono<CarrierEnv>()
  .post("/telephony/telnyx/webhook", telnyxGuard(), webhook)
  .get("/telephony/telnyx/media/:sessionId/:credential", telnyxGuard({ upgrade: true }), (c) =>
    forwardMediaUpgrade(c, "telnyx", c.req.param("sessionId")),
  )
  .get("/telephony/telnyx/media/:sessionId", telnyxGuard({ upgrade: true }), (c) => c.text("Forbidden", 403));
