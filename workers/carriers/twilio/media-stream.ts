import {
  asInteger,
  asRecord,
  asString,
  type CarrierMediaProtocol,
  encodingOf,
  type MediaFrame,
  parseJsonObject,
  sharedFrame,
} from "../media-frames.ts";

/** Twilio Media Streams: camelCase, numbers as strings, streamSid on every outbound message. */
export function twilioMedia(): CarrierMediaProtocol {
  // Remembered from `start` (the socket is not hibernatable: it lives as long as this closure).
  let streamSid: string | undefined;
  // Escaped once, when `start` names the stream, rather than in every outbound message.
  let streamSidJson = JSON.stringify("");

  const parse = (text: string): MediaFrame | null => {
    const message = parseJsonObject(text);
    if (!message) return null;
    switch (message.event) {
      case "connected":
        return { type: "connected" };
      case "start": {
        const start = asRecord(message.start);
        const sid = asString(message.streamSid) ?? asString(start?.streamSid);
        const callSid = asString(start?.callSid);
        const format = asRecord(start?.mediaFormat);
        const encoding = encodingOf(asString(format?.encoding));
        if (!start || !sid || !callSid || !encoding) return null;
        streamSid = sid;
        streamSidJson = JSON.stringify(sid);
        return {
          type: "start",
          streamId: sid,
          carrierCallId: callSid,
          encoding,
          sampleRate: asInteger(format?.sampleRate) ?? 8000,
          // The TwiML's <Parameter name="token">: the stream URL carries ids only (Twilio strips query strings).
          credential: asString(asRecord(start.customParameters)?.token),
        };
      }
      default:
        return sharedFrame(message) ?? null;
    }
  };

  return {
    parse,
    // Per chunk: only the variable strings are stringified (escaped), not a fresh object each time.
    audio: (payload) => `{"event":"media","streamSid":${streamSidJson},"media":{"payload":${JSON.stringify(payload)}}}`,
    mark: (name) => `{"event":"mark","streamSid":${streamSidJson},"mark":{"name":${JSON.stringify(name)}}}`,
    clear: () => JSON.stringify({ event: "clear", streamSid }),
  };
}
