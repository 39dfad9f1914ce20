import { constantTimeEqualText } from "../shared/constant-time.ts";
import { toBase64Url } from "../shared/encoding.ts";
import { hmac } from "../shared/hmac.ts";

/**
 * The credential a carrier's media stream presents for one call: an HMAC-SHA256 of the session id under the
 * MEDIA_STREAM_SECRET Worker secret. Stateless, so the Worker checks it before an upgrade reaches the call's object
 * (Telnyx: in the stream URL's path) and the object checks it in the stream's `start` (Twilio: a `<Parameter>`,
 * since Twilio's upgrade carries nothing but the signed URL). Rotating the secret invalidates the credentials of
 * calls in progress: their streams reconnect only if the carrier is handed a new URL.
 */
export async function mediaCredential(secret: string, sessionId: string): Promise<string> {
  return toBase64Url(await hmac(secret, `media-stream:${sessionId}`));
}

export async function verifyMediaCredential(secret: string, sessionId: string, presented: string | undefined): Promise<boolean> {
  if (!presented) return false;
  return constantTimeEqualText(presented, await mediaCredential(secret, sessionId));
}
