import { constantTimeEqualText } from "./constant-time.ts";
import { toBase64Url } from "./encoding.ts";
import { hmac } from "./hmac.ts";
import { parseSettings } from "./settings.ts";

/** A recording's signed link (`GET /recordings/{id}?exp&sig`); its bytes' format is recording-format.ts. */
/** The link's signature: an HMAC over the recording's id and the link's expiry (seconds since the epoch). */
export const recordingLinkSignature = async (key: string, id: string, exp: number) =>
  toBase64Url(await hmac(key, `recording:${id}:${exp}`));

/** A recording's signed link (`GET /recordings/{id}?exp&sig`) and when it expires, `ttlSeconds` from now. */
export async function signedRecordingLink(
  key: string,
  id: string,
  ttlSeconds: number,
  origin: string,
): Promise<{ url: string; expiresAt: string }> {
  const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
  const url = new URL(`/recordings/${id}`, origin);
  url.search = new URLSearchParams({ exp: String(exp), sig: await recordingLinkSignature(key, id, exp) }).toString();
  return { url: url.toString(), expiresAt: new Date(exp * 1000).toISOString() };
}

/**
 * Signs recordings' links for a document that lists several (the privacy export), or null when links are not
 * configured — the document then lists the recordings without links rather than failing.
 */
export function recordingLinker(env: object, origin: string): ((id: string) => Promise<{ url: string; expiresAt: string }>) | null {
  const { values, problems } = parseSettings(env);
  const key = values.RECORDING_SIGNING_KEY;
  if (!key || problems.some((problem) => problem.setting === "RECORDING_SIGNING_KEY")) return null;
  return (id) => signedRecordingLink(key, id, values.RECORDING_URL_TTL_SECONDS, values.PUBLIC_BASE_URL ?? origin);
}

/** True when `sig` is this link's signature and `exp` has not passed; compared in constant time. */
export async function recordingLinkValid(key: string, id: string, exp: number, sig: string, nowMs = Date.now()): Promise<boolean> {
  if (!Number.isSafeInteger(exp) || exp * 1000 <= nowMs) return false;
  return constantTimeEqualText(await recordingLinkSignature(key, id, exp), sig);
}
