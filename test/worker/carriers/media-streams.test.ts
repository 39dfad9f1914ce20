import { describe, expect, it } from "vitest";
import { telnyxMedia } from "../../../workers/carriers/telnyx/media-stream.ts";
import { twilioMedia } from "../../../workers/carriers/twilio/media-stream.ts";

/** The carriers' media messages exactly as Twilio's and Telnyx's documentation show them, translated both ways. */
describe("Twilio media stream translation", () => {
  it("parses every inbound message of the protocol", () => {
    const twilio = twilioMedia();
    expect(twilio.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}')).toEqual({ type: "connected" });
    expect(
      twilio.parse(
        '{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{"token":"t0k"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}',
      ),
    ).toEqual({
      type: "start",
      streamId: "MZ1",
      carrierCallId: "CA1",
      encoding: "pcmu",
      sampleRate: 8000,
      credential: "t0k",
    });
    expect(
      twilio.parse(
        '{"event":"media","sequenceNumber":"4","streamSid":"MZ1","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"//8="}}',
      ),
    ).toEqual({
      type: "audio",
      payload: "//8=",
      chunk: 2,
      sentMs: 5,
    });
    expect(twilio.parse('{"event":"dtmf","sequenceNumber":"5","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"1"}}')).toEqual({
      type: "dtmf",
      digit: "1",
    });
    expect(twilio.parse('{"event":"mark","sequenceNumber":"6","streamSid":"MZ1","mark":{"name":"label"}}')).toEqual({
      type: "mark",
      name: "label",
    });
    expect(twilio.parse('{"event":"stop","sequenceNumber":"7","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}')).toEqual({
      type: "stop",
    });
  });

  it("speaks Twilio's outbound messages with the stream's sid", () => {
    const twilio = twilioMedia();
    twilio.parse(
      '{"event":"start","streamSid":"MZ9","start":{"streamSid":"MZ9","callSid":"CA9","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000}}}',
    );
    expect(JSON.parse(twilio.audio("AAA="))).toEqual({ event: "media", streamSid: "MZ9", media: { payload: "AAA=" } });
    expect(JSON.parse(twilio.mark("resp-1"))).toEqual({ event: "mark", streamSid: "MZ9", mark: { name: "resp-1" } });
    expect(JSON.parse(twilio.clear())).toEqual({ event: "clear", streamSid: "MZ9" });
  });

  it("returns null for malformed or foreign messages instead of throwing", () => {
    const twilio = twilioMedia();
    for (const text of [
      "",
      "not json",
      "[]",
      "null",
      '{"event":"start"}',
      '{"event":"media","media":{}}',
      '{"event":"dtmf","dtmf":{"digit":"12"}}',
      '{"event":"media","media":{"track":"outbound","payload":"AA=="}}',
      '{"event":"wat"}',
    ]) {
      expect(twilio.parse(text), text).toBeNull();
    }
  });
});

describe("Telnyx media stream translation", () => {
  it("parses snake_case messages and decodes by the encoding `start` names", () => {
    const telnyx = telnyxMedia();
    expect(
      telnyx.parse(
        '{"event":"start","sequence_number":"1","stream_id":"s1","start":{"call_control_id":"v2:abc","call_session_id":"cs","from":"+1","to":"+2","media_format":{"encoding":"PCMA","sample_rate":8000,"channels":1}}}',
      ),
    ).toEqual({ type: "start", streamId: "s1", carrierCallId: "v2:abc", encoding: "pcma", sampleRate: 8000, credential: undefined });
    expect(
      telnyx.parse(
        '{"event":"start","stream_id":"s1","start":{"call_control_id":"v2:abc","media_format":{"encoding":"audio/x-mulaw","sample_rate":8000}}}',
      ),
    ).toMatchObject({ encoding: "pcmu" });
    expect(
      telnyx.parse(
        '{"event":"media","sequence_number":"4","stream_id":"s1","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"AA=="}}',
      ),
    ).toEqual({
      type: "audio",
      payload: "AA==",
      chunk: 2,
      sentMs: 5,
    });
    expect(telnyx.parse('{"event":"error","stream_id":"s1","payload":{"code":100003,"title":"malformed_frame","detail":"bad"}}')).toEqual({
      type: "carrier_error",
      code: 100003,
      detail: "bad",
    });
    expect(telnyx.parse('{"event":"start","start":{"call_control_id":"v2:abc","media_format":{"encoding":"OPUS"}}}')).toBeNull();
  });

  it("speaks rtp-mode outbound messages without a stream id", () => {
    const telnyx = telnyxMedia();
    expect(JSON.parse(telnyx.audio("AA=="))).toEqual({ event: "media", media: { payload: "AA==" } });
    expect(JSON.parse(telnyx.mark("m"))).toEqual({ event: "mark", mark: { name: "m" } });
    expect(JSON.parse(telnyx.clear())).toEqual({ event: "clear" });
  });
});
