/**
 * Telnyx webhook signatures: Ed25519 over the UTF-8 bytes of `timestamp + "|" + rawBody`, headers
 * `telnyx-signature-ed25519` (base64, 64 bytes) and `telnyx-timestamp` (unix seconds). Accepts what telnyx-node's
 * `TelnyxWebhook.verify` accepts, with the clock and the window passed in. Pure WebCrypto: Node can load it too.
 */

export type TelnyxRejection = "missing_headers" | "malformed" | "bad_signature" | "stale";
export type TelnyxVerdict = { ok: true } | { ok: false; reason: TelnyxRejection };

const SIGNATURE_BYTES = 64;
const PUBLIC_KEY_BYTES = 32;
// Public keys come from configuration (one, two during rotation): the cache never grows past a handful.
const KEY_CACHE_LIMIT = 8;
const encoder = new TextEncoder();
const verifyKeys = new Map<string, Promise<CryptoKey>>();

/**
 * Never throws for anything a caller sends; throws only when `publicKey` itself is not base64 of 32 bytes, which
 * is a configuration error rather than a bad request.
 */
export async function verifyTelnyxSignature(input: {
  publicKey: string;
  rawBody: string;
  signature: string | null;
  timestamp: string | null;
  nowSeconds: number;
  maxSkewSeconds: number;
}): Promise<TelnyxVerdict> {
  const { signature, timestamp } = input;
  if (!signature || !timestamp) return { ok: false, reason: "missing_headers" };
  const signatureBytes = decodeStrictBase64(signature);
  // Digits only, as telnyx-node: "+1700000000", "1.7e9" or " 1700000000" are not timestamps.
  const timestampValid = /^\d+$/.test(timestamp) && Number.isSafeInteger(Number(timestamp));
  if (signatureBytes?.length !== SIGNATURE_BYTES || !timestampValid) return { ok: false, reason: "malformed" };
  // Checked before the signature: a replay is refused without spending a verification on it.
  if (Math.abs(input.nowSeconds - Number(timestamp)) > input.maxSkewSeconds) return { ok: false, reason: "stale" };
  const signed = encoder.encode(`${timestamp}|${input.rawBody}`);
  const valid = await crypto.subtle.verify("Ed25519", await verifyKey(input.publicKey), signatureBytes, signed);
  return valid ? { ok: true } : { ok: false, reason: "bad_signature" };
}

function verifyKey(publicKey: string): Promise<CryptoKey> {
  let key = verifyKeys.get(publicKey);
  if (!key) {
    const raw = decodeStrictBase64(publicKey);
    if (raw?.length !== PUBLIC_KEY_BYTES) throw new Error("The Telnyx public key must be base64 of 32 raw Ed25519 bytes");
    if (verifyKeys.size >= KEY_CACHE_LIMIT) verifyKeys.clear();
    key = crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
    verifyKeys.set(publicKey, key);
  }
  return key;
}

/** Padded standard base64 only (atob alone would also accept whitespace and missing padding). */
function decodeStrictBase64(text: string): Uint8Array<ArrayBuffer> | null {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}
