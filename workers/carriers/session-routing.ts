import { sessionForCarrierCall } from "../shared/db/directory.ts";
import type { Carrier } from "../shared/db/schema.ts";
import { toHex } from "../shared/encoding.ts";
import { metrics } from "../shared/observability/metrics.ts";
import { callObject } from "../shared/session-ids.ts";
import { yieldToSockets } from "../shared/yield-to-sockets.ts";
import type { CarrierEvent } from "./carrier.ts";

/**
 * Every webhook for a call must reach the one object that owns it. Inbound calls get a session id derived from the
 * carrier's call id, so the first webhook and all its retries land on the same object with no lookup; outbound
 * calls carry their session id in URLs and client_state we gave the carrier.
 */
export async function deriveSessionId(carrier: Carrier, carrierCallId: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`session:${carrier}:${carrierCallId}`)));
  const hex = toHex(digest.subarray(0, 16));
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Delivers a carrier event to the object that owns its call: the session the event names (outbound calls), else the
 * one derived from the carrier's call id (inbound calls — no lookup, so a status callback lands even while D1 and KV
 * are down), else the one the directory knows the carrier call by. A turn after the guard's own in-process calls (its
 * rate limiter's commit): the object's work, a call's end among it, is not chained onto them (yield-to-sockets.ts).
 */
export async function deliverCarrierEvent(env: Env, event: CarrierEvent, sessionHint: string | undefined, correlationId: string) {
  await yieldToSockets();
  const deliver = async (sessionId: string) => {
    const outcome = await callObject(env, sessionId).applyCarrierEvent(event, correlationId);
    // A redelivery passed the guard (counted accepted) and changed nothing: counted apart, so its share shows.
    if (outcome === "duplicate") metrics.count("webhook_requests_total", { carrier: event.carrier, outcome: "duplicate" });
    return { sessionId, outcome };
  };
  if (sessionHint) return deliver(sessionHint);
  const derived = await deliver(await deriveSessionId(event.carrier, event.carrierCallId));
  if (derived.outcome !== "unknown_call") return derived;
  const known = await sessionForCarrierCall(env, event.carrier, event.carrierCallId);
  return known && known.sessionId !== derived.sessionId ? deliver(known.sessionId) : derived;
}
