import type { Context } from "hono";
import { isWebSocketUpgrade } from "../shared/websocket-upgrade.ts";
import { callObject, isSessionId } from "./session-routing.ts";
import type { CarrierEnv } from "./webhook-guard.ts";

/** Hands an already-checked carrier media upgrade to the call's object, which accepts the socket. */
export async function forwardMediaUpgrade(c: Context<CarrierEnv>, sessionId: string): Promise<Response> {
  if (!isWebSocketUpgrade(c.req.raw.headers)) return c.text("Expected a WebSocket upgrade", 426);
  if (!isSessionId(sessionId)) return c.text("Unknown call", 404);
  const headers = new Headers(c.req.raw.headers);
  headers.set("X-Correlation-ID", c.get("correlationId"));
  return callObject(c.env, sessionId).fetch(new Request(c.req.raw.url, { method: "GET", headers }));
}
