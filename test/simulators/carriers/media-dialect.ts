import type { G711Codec } from "./audio.ts";

/**
 * What differs between Twilio Media Streams and Telnyx media streaming: message shapes and naming. The media
 * leg (media-leg.ts) does the pacing, playback and bookkeeping for both.
 */
export interface OutgoingMediaFrame {
  sequenceNumber: number;
  /** 1-based count of media frames on this stream. */
  chunk: number;
  /** Media time of the frame since the stream started. */
  timestampMs: number;
  payloadBase64: string;
}

/** A message the platform sent to the carrier, once validated against the carrier's protocol. */
export type PlatformMediaCommand = { kind: "media"; payloadBase64: string } | { kind: "mark"; name: string } | { kind: "clear" };

export interface CarrierMediaDialect<Message> {
  readonly carrier: "twilio" | "telnyx";
  /** Encoding of the caller audio the carrier sends. */
  readonly codec: G711Codec;
  /** Encoding of the audio the platform sends back. */
  readonly playbackCodec: G711Codec;
  connected(): Message;
  start(sequenceNumber: number): Message;
  media(frame: OutgoingMediaFrame): Message;
  dtmf(digit: string, sequenceNumber: number): Message;
  markPlayed(name: string, sequenceNumber: number): Message;
  stop(sequenceNumber: number): Message;
  /** Throws MediaProtocolError when the message breaks the carrier's protocol. */
  parse(message: unknown): PlatformMediaCommand;
}

/** The platform sent something the real carrier would reject (Twilio answers such frames with error 31950). */
export class MediaProtocolError extends Error {
  override readonly name = "MediaProtocolError";
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Platform → carrier media/mark/clear, common to both carriers once the envelope is checked. */
export function parseCommonCommand(message: Record<string, unknown>): PlatformMediaCommand {
  switch (message.event) {
    case "media": {
      const payload = isRecord(message.media) ? message.media.payload : undefined;
      if (typeof payload !== "string" || payload.length === 0 || !BASE64.test(payload)) {
        throw new MediaProtocolError("media.payload must be non-empty base64");
      }
      // Raw G.711 only: a WAV header inside the payload would play as a click (Twilio rejects it).
      if (payload.startsWith("UklGR")) throw new MediaProtocolError("media.payload starts with a RIFF header");
      return { kind: "media", payloadBase64: payload };
    }
    case "mark": {
      const name = isRecord(message.mark) ? message.mark.name : undefined;
      if (typeof name !== "string" || name.length === 0) throw new MediaProtocolError("mark.name must be a string");
      return { kind: "mark", name };
    }
    case "clear":
      return { kind: "clear" };
    default:
      throw new MediaProtocolError(`unknown event ${JSON.stringify(message.event)}`);
  }
}
