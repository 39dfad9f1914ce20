import { isRecord } from "../shared/json.ts";

/**
 * The internal vocabulary of carrier media streams. Each carrier module translates its own JSON into these frames
 * and back, so the call's object never handles carrier-specific messages.
 */
export type AudioEncoding = "pcmu" | "pcma";

export type MediaFrame =
  | { type: "connected" }
  | {
      type: "start";
      streamId: string;
      carrierCallId: string;
      encoding: AudioEncoding;
      sampleRate: number;
      /** The call's media credential, from carriers whose stream presents it in `start` (Carrier.authenticatesInStream). */
      credential: string | undefined;
    }
  /**
   * `chunk` counts media frames only (sequence numbers count every event), so it orders audio; `sentMs`, the frame's
   * timestamp (ms since the stream started, by the carrier's clock), says how late it is read. The sequence number is
   * not read: nothing uses it, and this is parsed for every 20 ms of every call.
   */
  | { type: "audio"; payload: string; chunk: number | undefined; sentMs: number | undefined }
  | { type: "dtmf"; digit: string }
  | { type: "mark"; name: string }
  | { type: "stop" }
  | { type: "carrier_error"; code: number | undefined; detail: string };

export interface CarrierMediaProtocol {
  /** null when the message is malformed or not one the carrier defines (the caller counts and skips it). */
  parse(text: string): MediaFrame | null;
  audio(payloadBase64: string): string;
  mark(name: string): string;
  clear(): string;
}

/** Per-frame path: plain JSON.parse and field checks rather than a schema library (measured in `npm run bench`). */
export function parseJsonObject(text: string): Record<string, unknown> | null {
  try {
    return asRecord(JSON.parse(text));
  } catch {
    return null;
  }
}

export const asRecord = (value: unknown): Record<string, unknown> | null => (isRecord(value) ? value : null);

export const asString = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

export function asInteger(value: unknown): number | undefined {
  const number = typeof value === "string" && value !== "" ? Number(value) : typeof value === "number" ? value : NaN;
  return Number.isSafeInteger(number) ? number : undefined;
}

export function encodingOf(name: string | undefined): AudioEncoding | null {
  if (name === "audio/x-mulaw" || name === "PCMU") return "pcmu";
  if (name === "audio/x-alaw" || name === "PCMA") return "pcma";
  return null;
}

const DTMF = /^[0-9A-D*#]$/;
const isDtmfDigit = (digit: string | undefined): digit is string => digit !== undefined && DTMF.test(digit);

/**
 * `media`, `dtmf`, `mark` and `stop` are spelled alike by both carriers (their sequence fields differ, and are not
 * read); `undefined` means the event is not one of them.
 */
export function sharedFrame(message: Record<string, unknown>): MediaFrame | null | undefined {
  switch (message.event) {
    case "media": {
      const media = asRecord(message.media);
      const payload = asString(media?.payload);
      if (!payload || (media?.track !== undefined && media.track !== "inbound")) return null;
      return { type: "audio", payload, chunk: asInteger(media?.chunk), sentMs: asInteger(media?.timestamp) };
    }
    case "dtmf": {
      const digit = asString(asRecord(message.dtmf)?.digit);
      return isDtmfDigit(digit) ? { type: "dtmf", digit } : null;
    }
    case "mark": {
      const name = asString(asRecord(message.mark)?.name);
      return name ? { type: "mark", name } : null;
    }
    case "stop":
      return { type: "stop" };
    default:
      return undefined;
  }
}
