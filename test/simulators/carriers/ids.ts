import { randomBytes, randomUUID } from "node:crypto";

/** Identifiers in the carriers' formats. */

/** Twilio SIDs: two-letter type prefix + 32 hex digits (CA call, MZ stream, RE recording, PN phone number, SM message). */
export function twilioSid(prefix: "CA" | "MZ" | "RE" | "PN" | "SM"): string {
  return prefix + randomBytes(16).toString("hex");
}

/** Telnyx call_control_id: opaque, `v3:`-prefixed, URL-safe. */
export function telnyxCallControlId(): string {
  return `v3:${randomBytes(24).toString("base64url")}`;
}

export function uuid(): string {
  return randomUUID();
}
