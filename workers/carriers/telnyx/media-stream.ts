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

/** Telnyx media streaming: snake_case; in rtp bidirectional mode outbound messages carry no stream id. */
export function telnyxMedia(): CarrierMediaProtocol {
  const parse = (text: string): MediaFrame | null => {
    const message = parseJsonObject(text);
    if (!message) return null;
    switch (message.event) {
      case "connected":
        return { type: "connected" };
      case "start": {
        const start = asRecord(message.start);
        const streamId = asString(message.stream_id) ?? "";
        const callControlId = asString(start?.call_control_id);
        const format = asRecord(start?.media_format);
        const encoding = encodingOf(asString(format?.encoding));
        if (!start || !callControlId || !encoding) return null;
        return {
          type: "start",
          streamId,
          carrierCallId: callControlId,
          encoding,
          sampleRate: asInteger(format?.sample_rate) ?? 8000,
          credential: undefined,
        };
      }
      case "error": {
        const payload = asRecord(message.payload);
        return {
          type: "carrier_error",
          code: asInteger(payload?.code),
          detail: asString(payload?.detail) ?? asString(payload?.title) ?? "unknown",
        };
      }
      default:
        return sharedFrame(message) ?? null;
    }
  };

  return {
    parse,
    // Per chunk: only the variable strings are stringified (escaped), not a fresh object each time.
    audio: (payload) => `{"event":"media","media":{"payload":${JSON.stringify(payload)}}}`,
    mark: (name) => `{"event":"mark","mark":{"name":${JSON.stringify(name)}}}`,
    clear: () => JSON.stringify({ event: "clear" }),
  };
}
