import type { G711Codec } from "./audio.ts";
import {
  type CarrierMediaDialect,
  isRecord,
  MediaProtocolError,
  type OutgoingMediaFrame,
  type PlatformMediaCommand,
  parseCommonCommand,
} from "./media-dialect.ts";

/** Telnyx media streaming messages, Telnyx → server: snake_case, counters as strings. */
export type TelnyxStreamMessage =
  | { event: "connected"; version: "1.0.0" }
  | {
      event: "start";
      sequence_number: string;
      stream_id: string;
      start: {
        call_control_id: string;
        call_session_id: string;
        from: string;
        to: string;
        client_state?: string;
        media_format: { encoding: G711Codec; sample_rate: 8000; channels: 1 };
      };
    }
  | {
      event: "media";
      sequence_number: string;
      stream_id: string;
      media: { track: "inbound"; chunk: string; timestamp: string; payload: string };
    }
  | { event: "dtmf"; sequence_number: string; stream_id: string; dtmf: { digit: string } }
  | { event: "mark"; sequence_number: string; stream_id: string; mark: { name: string } }
  | { event: "stop"; sequence_number: string; stream_id: string; stop: { call_control_id: string } };

export interface TelnyxStreamIdentity {
  streamId: string;
  callControlId: string;
  callSessionId: string;
  from: string;
  to: string;
  clientState: string | undefined;
  codec: G711Codec;
  playbackCodec: G711Codec;
}

export function telnyxMediaDialect(identity: TelnyxStreamIdentity): CarrierMediaDialect<TelnyxStreamMessage> {
  const stream_id = identity.streamId;
  return {
    carrier: "telnyx",
    codec: identity.codec,
    playbackCodec: identity.playbackCodec,
    connected: () => ({ event: "connected", version: "1.0.0" }),
    start: (sequenceNumber) => ({
      event: "start",
      sequence_number: String(sequenceNumber),
      stream_id,
      start: {
        call_control_id: identity.callControlId,
        call_session_id: identity.callSessionId,
        from: identity.from,
        to: identity.to,
        ...(identity.clientState === undefined ? {} : { client_state: identity.clientState }),
        media_format: { encoding: identity.codec, sample_rate: 8000, channels: 1 },
      },
    }),
    media: (frame: OutgoingMediaFrame) => ({
      event: "media",
      sequence_number: String(frame.sequenceNumber),
      stream_id,
      media: {
        track: "inbound",
        chunk: String(frame.chunk),
        timestamp: String(frame.timestampMs),
        payload: frame.payloadBase64,
      },
    }),
    dtmf: (digit, sequenceNumber) => ({ event: "dtmf", sequence_number: String(sequenceNumber), stream_id, dtmf: { digit } }),
    markPlayed: (name, sequenceNumber) => ({ event: "mark", sequence_number: String(sequenceNumber), stream_id, mark: { name } }),
    stop: (sequenceNumber) => ({
      event: "stop",
      sequence_number: String(sequenceNumber),
      stream_id,
      stop: { call_control_id: identity.callControlId },
    }),
    parse(message: unknown): PlatformMediaCommand {
      if (!isRecord(message)) throw new MediaProtocolError("message must be a JSON object");
      // rtp bidirectional mode carries no stream id; tolerate one, but it must then be this stream's.
      if (message.stream_id !== undefined && message.stream_id !== stream_id) {
        throw new MediaProtocolError(`stream_id ${JSON.stringify(message.stream_id)} is not this stream's`);
      }
      return parseCommonCommand(message);
    },
  };
}
