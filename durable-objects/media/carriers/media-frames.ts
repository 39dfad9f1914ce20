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
      customParameters: Record<string, string>;
    }
  | { type: "audio"; payload: string; sequence: number | undefined; timestampMs: number | undefined }
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
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export const asRecord = (value: unknown): Record<string, unknown> | null =>
  value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;

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
export const isDtmfDigit = (digit: string | undefined): digit is string => digit !== undefined && DTMF.test(digit);
