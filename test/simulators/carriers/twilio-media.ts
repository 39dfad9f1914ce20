import {
  type CarrierMediaDialect,
  isRecord,
  MediaProtocolError,
  type OutgoingMediaFrame,
  type PlatformMediaCommand,
  parseCommonCommand,
} from "./media-dialect.ts";

/** Twilio Media Streams messages, Twilio → server. Counters are strings on this wire. */
export type TwilioStreamMessage =
  | { event: "connected"; protocol: "Call"; version: "1.0.0" }
  | {
      event: "start";
      sequenceNumber: string;
      streamSid: string;
      start: {
        accountSid: string;
        streamSid: string;
        callSid: string;
        tracks: ["inbound"];
        customParameters: Record<string, string>;
        mediaFormat: { encoding: "audio/x-mulaw"; sampleRate: 8000; channels: 1 };
      };
    }
  | {
      event: "media";
      sequenceNumber: string;
      streamSid: string;
      media: { track: "inbound"; chunk: string; timestamp: string; payload: string };
    }
  | { event: "dtmf"; sequenceNumber: string; streamSid: string; dtmf: { track: "inbound_track"; digit: string } }
  | { event: "mark"; sequenceNumber: string; streamSid: string; mark: { name: string } }
  | { event: "stop"; sequenceNumber: string; streamSid: string; stop: { accountSid: string; callSid: string } };

export interface TwilioStreamIdentity {
  accountSid: string;
  callSid: string;
  streamSid: string;
  customParameters: Record<string, string>;
}

export function twilioMediaDialect(identity: TwilioStreamIdentity): CarrierMediaDialect<TwilioStreamMessage> {
  const { accountSid, callSid, streamSid } = identity;
  return {
    carrier: "twilio",
    codec: "PCMU",
    playbackCodec: "PCMU",
    connected: () => ({ event: "connected", protocol: "Call", version: "1.0.0" }),
    start: (sequenceNumber) => ({
      event: "start",
      sequenceNumber: String(sequenceNumber),
      streamSid,
      start: {
        accountSid,
        streamSid,
        callSid,
        tracks: ["inbound"],
        customParameters: identity.customParameters,
        mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
      },
    }),
    media: (frame: OutgoingMediaFrame) => ({
      event: "media",
      sequenceNumber: String(frame.sequenceNumber),
      streamSid,
      media: {
        track: "inbound",
        chunk: String(frame.chunk),
        timestamp: String(frame.timestampMs),
        payload: frame.payloadBase64,
      },
    }),
    dtmf: (digit, sequenceNumber) => ({
      event: "dtmf",
      sequenceNumber: String(sequenceNumber),
      streamSid,
      dtmf: { track: "inbound_track", digit },
    }),
    markPlayed: (name, sequenceNumber) => ({ event: "mark", sequenceNumber: String(sequenceNumber), streamSid, mark: { name } }),
    stop: (sequenceNumber) => ({
      event: "stop",
      sequenceNumber: String(sequenceNumber),
      streamSid,
      stop: { accountSid, callSid },
    }),
    parse(message: unknown): PlatformMediaCommand {
      if (!isRecord(message)) throw new MediaProtocolError("message must be a JSON object");
      // Twilio routes server messages by streamSid; a wrong one never reaches the call.
      if (message.streamSid !== streamSid) {
        throw new MediaProtocolError(`streamSid ${JSON.stringify(message.streamSid)} is not this stream's ${streamSid}`);
      }
      return parseCommonCommand(message);
    },
  };
}
