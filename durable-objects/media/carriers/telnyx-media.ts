import {
  asInteger, asRecord, asString, encodingOf, isDtmfDigit, parseJsonObject,
  type CarrierMediaProtocol, type MediaFrame,
} from "./media-frames";

/** Telnyx media streaming (protocols.md §4): snake_case; in rtp bidirectional mode outbound messages carry no stream id. */
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
        return { type: "start", streamId, carrierCallId: callControlId, encoding, sampleRate: asInteger(format?.sample_rate) ?? 8000, customParameters: {} };
      }
      case "media": {
        const media = asRecord(message.media);
        const payload = asString(media?.payload);
        if (!payload || (media?.track !== undefined && media.track !== "inbound")) return null;
        return { type: "audio", payload, sequence: asInteger(message.sequence_number), timestampMs: asInteger(media?.timestamp) };
      }
      case "dtmf": {
        const digit = asString(asRecord(message.dtmf)?.digit);
        return isDtmfDigit(digit) ? { type: "dtmf", digit } : null;
      }
      case "mark": {
        const name = asString(asRecord(message.mark)?.name);
        return name ? { type: "mark", name } : null;
      }
      case "error": {
        const payload = asRecord(message.payload);
        return { type: "carrier_error", code: asInteger(payload?.code), detail: asString(payload?.detail) ?? asString(payload?.title) ?? "unknown" };
      }
      case "stop":
        return { type: "stop" };
      default:
        return null;
    }
  };

  return {
    parse,
    audio: (payload) => JSON.stringify({ event: "media", media: { payload } }),
    mark: (name) => JSON.stringify({ event: "mark", mark: { name } }),
    clear: () => JSON.stringify({ event: "clear" }),
  };
}
