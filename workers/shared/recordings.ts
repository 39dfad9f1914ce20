import { constantTimeEqualText } from "./constant-time.ts";
import { toBase64Url } from "./encoding.ts";
import { hmac } from "./hmac.ts";
import { parseSettings } from "./settings.ts";

/**
 * What the call's object (durable-objects/recording/) and the Worker (workers/routes/recordings.ts) agree on about
 * a recording: its format, where it lives in R2, its WAV header, and its signed link.
 */

/** Telephony's rate: a phone call carries nothing above 4 kHz, and a browser's 16 kHz is resampled down to it. */
export const RECORDING_RATE = 8000;
/** Caller left, agent right. */
export const RECORDING_CHANNELS = 2 as const;
/** Bytes per sample frame of the interleaved PCM16 (both channels). */
export const RECORDING_FRAME_BYTES = 2 * RECORDING_CHANNELS;
export const WAV_HEADER_BYTES = 44;

/** Every object of a session's recording lives under this prefix: erasure and retention delete by it. */
export const recordingPrefix = (tenantId: string, sessionId: string) => `recordings/${tenantId}/${sessionId}/`;
/** The interleaved PCM flushed during the call, in order (zero-padded so R2's lexical listing is the order). */
export const recordingPartKey = (prefix: string, seq: number) => `${prefix}parts/${String(seq).padStart(8, "0")}`;
export const recordingWavKey = (prefix: string) => `${prefix}recording.wav`;

/**
 * The 44-byte RIFF/WAVE header of PCM16 stereo at RECORDING_RATE holding `dataBytes` of samples. Written by hand:
 * it is eleven fields, and no WAV package is installed.
 */
export function wavHeader(dataBytes: number): Uint8Array {
  const header = new Uint8Array(WAV_HEADER_BYTES);
  const view = new DataView(header.buffer);
  const ascii = (offset: number, text: string) => {
    for (let i = 0; i < text.length; i++) header[offset + i] = text.charCodeAt(i);
  };
  ascii(0, "RIFF");
  view.setUint32(4, 36 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, RECORDING_CHANNELS, true);
  view.setUint32(24, RECORDING_RATE, true);
  view.setUint32(28, RECORDING_RATE * RECORDING_FRAME_BYTES, true);
  view.setUint16(32, RECORDING_FRAME_BYTES, true);
  view.setUint16(34, 16, true);
  ascii(36, "data");
  view.setUint32(40, dataBytes, true);
  return header;
}

export const durationMsOf = (dataBytes: number) => Math.round((dataBytes / RECORDING_FRAME_BYTES / RECORDING_RATE) * 1000);

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
