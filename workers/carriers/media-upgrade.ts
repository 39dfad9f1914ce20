import type { Context } from "hono";
import type { Carrier } from "../shared/db/schema.ts";
import { callObject, isSessionId } from "../shared/session-ids.ts";
import { isWebSocketUpgrade } from "../shared/websockets.ts";
import type { CarrierEnv } from "./webhook-guard.ts";

/** Where the call's object takes a carrier's media upgrade, and the headers that tell it which carrier and call. */
export const MEDIA_UPGRADE_PATH = "/media";
export const MEDIA_CARRIER_HEADER = "X-Media-Carrier";
export const MEDIA_SESSION_HEADER = "X-Media-Session";

/**
 * Hands a carrier media upgrade that passed its guard to the call's object, which accepts the socket. Only the
 * Worker reaches the object, so the object trusts the carrier and session named in the headers; the public path
 * (and any credential in it) is not passed on.
 */
export async function forwardMediaUpgrade(c: Context<CarrierEnv>, carrier: Carrier, sessionId: string): Promise<Response> {
  if (!isWebSocketUpgrade(c.req.raw.headers)) return c.text("Expected a WebSocket upgrade", 426);
  if (!isSessionId(sessionId)) return c.text("Unknown call", 404);
  const headers = new Headers({ Upgrade: "websocket" });
  headers.set("X-Correlation-ID", c.get("correlationId"));
  headers.set(MEDIA_CARRIER_HEADER, carrier);
  headers.set(MEDIA_SESSION_HEADER, sessionId);
  return callObject(c.env, sessionId).fetch(new Request(`https://session.internal${MEDIA_UPGRADE_PATH}`, { headers }));
}
