import type { Carrier } from "../shared/db/schema.ts";
import { toHex } from "../shared/encoding.ts";

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
