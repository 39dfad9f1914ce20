import { createPrivateKey, createPublicKey, type KeyObject, sign } from "node:crypto";
import twilioWebhooks from "twilio/lib/webhooks/webhooks.js";

/**
 * Signatures the carriers put on their requests. Twilio's come from twilio-node itself, so the simulator signs
 * exactly as Twilio does; Telnyx's are Ed25519 over `timestamp|rawBody`.
 */

export type FormParams = Record<string, string | string[]>;

export function twilioSignature(authToken: string, url: string, params: FormParams): string {
  return twilioWebhooks.getExpectedTwilioSignature(authToken, url, params);
}

/** The test key: the Ed25519 seed is bytes 0x00..0x1f (public key A6EHv/POEL4d…). */
export const DEFAULT_TELNYX_SIGNING_SEED: Uint8Array = Uint8Array.from({ length: 32 }, (_, index) => index);

// PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): SEQUENCE { version 0, AlgorithmIdentifier 1.3.101.112, OCTET STRING { OCTET STRING seed } }.
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

export interface TelnyxSigner {
  /** Base64 of the raw 32-byte public key, the form TELNYX_PUBLIC_KEY takes. */
  readonly publicKeyBase64: string;
  headers(rawBody: string, timestampSeconds?: number): { "telnyx-signature-ed25519": string; "telnyx-timestamp": string };
}

export function telnyxSigner(seed: Uint8Array = DEFAULT_TELNYX_SIGNING_SEED): TelnyxSigner {
  if (seed.length !== 32) throw new Error("an Ed25519 seed is 32 bytes");
  const privateKey: KeyObject = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  const publicJwk = createPublicKey(privateKey).export({ format: "jwk" });
  return {
    publicKeyBase64: Buffer.from(publicJwk.x ?? "", "base64url").toString("base64"),
    headers(rawBody, timestampSeconds = Math.floor(Date.now() / 1000)) {
      const timestamp = String(timestampSeconds);
      const signature = sign(null, Buffer.from(`${timestamp}|${rawBody}`, "utf8"), privateKey);
      return { "telnyx-signature-ed25519": signature.toString("base64"), "telnyx-timestamp": timestamp };
    },
  };
}
