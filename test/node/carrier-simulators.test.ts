import { execFile } from "node:child_process";
import { createPublicKey, verify } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import alawmulaw from "alawmulaw";
import twilioWebhooks from "twilio/lib/webhooks/webhooks.js";
import { afterEach, describe, expect, inject, it } from "vitest";
import { readWav } from "../simulators/carriers/audio.ts";
import type { MediaClock } from "../simulators/carriers/clock.ts";
import { type CarrierApis, startCarrierApis } from "../simulators/carriers/index.ts";
import { type PeerRequest, type PeerSocket, type PlatformPeer, startPlatformPeer } from "../simulators/carriers/platform-peer.ts";
import { AgentPlayback } from "../simulators/carriers/playback.ts";
import { simulateCall } from "../simulators/carriers/simulate-call.ts";
import { parseTwiml } from "../simulators/carriers/twiml.ts";
import { CALLER_AUDIO_DIR } from "../simulators/providers/caller-audio.ts";
import {
  TEST_PUBLIC_BASE_URL,
  TEST_TELNYX_API_KEY,
  TEST_TELNYX_PUBLIC_KEY,
  TEST_TWILIO_ACCOUNT_SID,
  TEST_TWILIO_AUTH_TOKEN,
} from "../support/test-settings.ts";

/**
 * The carrier simulators checked against independent oracles: twilio-node's validateRequest, node:crypto
 * Ed25519 verification with the configured public key, the WAV files' own samples, and the carriers'
 * documented REST answers. A small in-test peer plays the platform's side of each protocol.
 */

const AUDIO_DIR = CALLER_AUDIO_DIR;
const TELNYX_API_KEY = TEST_TELNYX_API_KEY;
const twilioAuth = `Basic ${Buffer.from(`${TEST_TWILIO_ACCOUNT_SID}:${TEST_TWILIO_AUTH_TOKEN}`).toString("base64")}`;
const twilioCredentials = { accountSid: TEST_TWILIO_ACCOUNT_SID, authToken: TEST_TWILIO_AUTH_TOKEN };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function peer(handlers: Parameters<typeof startPlatformPeer>[0] = {}): Promise<PlatformPeer> {
  const started = await startPlatformPeer(handlers);
  cleanups.push(() => started.stop());
  return started;
}

async function carrierApis(options: Parameters<typeof startCarrierApis>[0] = {}): Promise<CarrierApis> {
  const started = await startCarrierApis(options);
  cleanups.push(() => started.stop());
  return started;
}

/** Samples straight from the file's data chunk: the oracle the streamed audio is compared with. */
function wavSamples(name: string): Int16Array {
  const file = readFileSync(join(AUDIO_DIR, name));
  expect(file.readUInt16LE(22)).toBe(1); // mono
  expect(file.readUInt32LE(24)).toBe(8000);
  expect(file.readUInt16LE(34)).toBe(16);
  const data = file.indexOf("data", 12, "latin1");
  const size = file.readUInt32LE(data + 4);
  const samples = new Int16Array(size / 2);
  for (let i = 0; i < samples.length; i++) samples[i] = file.readInt16LE(data + 8 + i * 2);
  return samples;
}

/** G.711 keeps about 13 bits: a decoded sample is within a few percent of the original. */
function expectCloseToG711(decoded: Int16Array, original: Int16Array): void {
  expect(decoded.length).toBe(original.length);
  let worst = 0;
  for (let i = 0; i < original.length; i++) {
    const allowed = 40 + Math.abs(original[i]!) / 16;
    worst = Math.max(worst, Math.abs(decoded[i]! - original[i]!) / allowed);
  }
  expect(worst).toBeLessThanOrEqual(1);
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((part) => [...part]));
}

function formOf(request: PeerRequest): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(request.body));
}

function streamTwiml(streamUrl: string, token: string): string {
  // Attributes in an unusual order and escaped entities, as a TwiML library may produce them.
  return `<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream name="s" url="${streamUrl}"><Parameter value="${token}" name="token"/></Stream></Connect></Response>`;
}

/** `ms` of a 400 Hz square wave (never a zero sample, so what played can be counted) as 20 ms G.711 payloads. */
function toneFrames(ms: number, codec: "PCMU" | "PCMA" = "PCMU"): string[] {
  const samples = Int16Array.from({ length: ms * 8 }, (_, i) => (Math.floor(i / 10) % 2 === 0 ? 6000 : -6000));
  const bytes = codec === "PCMU" ? alawmulaw.mulaw.encode(samples) : alawmulaw.alaw.encode(samples);
  const frames: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += 160)
    frames.push(Buffer.from(bytes.subarray(offset, offset + 160)).toString("base64"));
  return frames;
}

function mediaMessages(socket: PeerSocket): Record<string, unknown>[] {
  return socket.messages.filter((message) => message.event === "media");
}

function field(message: Record<string, unknown>, ...path: string[]): unknown {
  let value: unknown = message;
  for (const key of path) value = typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return value;
}

const twilioVoiceReply =
  (streamUrl = `wss://switchboard.test/telephony/twilio/media/session-42`) =>
  (request: PeerRequest) =>
    request.url.startsWith("/telephony/twilio/voice")
      ? { status: 200, contentType: "text/xml", body: streamTwiml(streamUrl, "tok&amp;en&lt;1&gt;") }
      : { status: 204 };

describe("TwiML reader", () => {
  it("reads <Connect><Stream> with attributes in any order, either quotes and escaped entities", () => {
    const document = parseTwiml(
      `<?xml version="1.0"?>\n<Response>\n  <!-- stream -->\n  <Connect><Stream statusCallback="https://a.test/s?x=1&amp;y=2" url='wss://h.test/m/1'>` +
        `<Parameter value="&quot;v&quot; &#x41;&#66;" name="token" /></Stream></Connect>\n</Response>`,
    );
    expect(document.connectStream).toEqual({
      url: "wss://h.test/m/1",
      parameters: { token: '"v" AB' },
      attributes: { statusCallback: "https://a.test/s?x=1&y=2", url: "wss://h.test/m/1" },
    });
    expect(parseTwiml("<Response><Dial>+15550001234</Dial></Response>").verbs.map((verb) => verb.name)).toEqual(["Dial"]);
  });

  it("rejects mismatched tags and documents without <Response>", () => {
    expect(() => parseTwiml("<Response><Connect></Response>")).toThrow(/unexpected <\/Response>/);
    expect(() => parseTwiml("<Hangup/>")).toThrow(/no <Response>/);
  });
});

/** A clock a test advances by hand: timers fire in due order, nothing depends on the wall clock. */
function manualClock(): MediaClock & { advanceTo(ms: number): void } {
  let now = 0;
  let timers: Array<{ atMs: number; callback: () => void }> = [];
  return {
    now: () => now,
    at(atMs, callback) {
      const timer = { atMs, callback };
      timers.push(timer);
      return () => {
        timers = timers.filter((candidate) => candidate !== timer);
      };
    },
    advanceTo(ms) {
      for (;;) {
        const due = timers.filter((timer) => timer.atMs <= ms).sort((a, b) => a.atMs - b.atMs)[0];
        if (!due) break;
        timers = timers.filter((timer) => timer !== due);
        now = due.atMs;
        due.callback();
      }
      now = ms;
    },
  };
}

describe("carrier playout buffer (AgentPlayback)", () => {
  it("echoes a mark at once when nothing is buffered, otherwise once the audio before it has played", () => {
    const clock = manualClock();
    const echoed: string[] = [];
    const playback = new AgentPlayback(clock, (name) => echoed.push(name));
    playback.mark("idle");
    expect(echoed).toEqual(["idle"]);
    playback.enqueue(new Int16Array(800).fill(1000)); // 100 ms
    playback.enqueue(new Int16Array(800).fill(2000)); // 100 ms more
    playback.mark("after-200ms");
    clock.advanceTo(199);
    expect(echoed).toEqual(["idle"]);
    clock.advanceTo(200);
    expect(echoed).toEqual(["idle", "after-200ms"]);
    expect(playback.recording()).toEqual(Int16Array.from([...new Int16Array(800).fill(1000), ...new Int16Array(800).fill(2000)]));
  });

  it("clear drops what has not played and echoes every pending mark in order", () => {
    const clock = manualClock();
    const echoed: string[] = [];
    const playback = new AgentPlayback(clock, (name) => echoed.push(name));
    clock.advanceTo(1000);
    playback.enqueue(new Int16Array(1600).fill(500)); // 200 ms from t=1000
    playback.mark("first");
    playback.enqueue(new Int16Array(1600).fill(700));
    playback.mark("second");
    clock.advanceTo(1050);
    expect(echoed).toEqual([]);
    playback.clear();
    expect(echoed).toEqual(["first", "second"]);
    const recording = playback.recording();
    expect(recording.length).toBe(8000 + 400); // silence until t=1000, then the 50 ms that played
    expect(recording.subarray(8000).every((sample) => sample === 500)).toBe(true);
    clock.advanceTo(5000);
    expect(echoed).toEqual(["first", "second"]); // cancelled timers stay silent
  });
});

describe("simulated Twilio inbound call", () => {
  it("signs the voice webhook and the stream upgrade over the public URLs (validated by twilio-node)", async () => {
    const platform = await peer({ http: twilioVoiceReply() });
    const report = await simulateCall({
      carrier: "twilio",
      baseUrl: platform.url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      to: "+15557654321",
      utterances: [],
      lingerMs: 100,
      speed: 10,
      twilio: twilioCredentials,
    });
    expect(report.errors).toEqual([]);
    const webhook = platform.requests.find((request) => request.url === "/telephony/twilio/voice")!;
    const params = formOf(webhook);
    expect(params).toMatchObject({
      CallSid: report.callId,
      AccountSid: TEST_TWILIO_ACCOUNT_SID,
      To: "+15557654321",
      Called: "+15557654321",
      CallStatus: "ringing",
      Direction: "inbound",
      ApiVersion: "2010-04-01",
    });
    expect(report.callId).toMatch(/^CA[0-9a-f]{32}$/);
    expect(webhook.headers["i-twilio-idempotency-token"]).toBeTruthy();
    const signature = String(webhook.headers["x-twilio-signature"]);
    expect(
      twilioWebhooks.validateRequest(TEST_TWILIO_AUTH_TOKEN, signature, `${TEST_PUBLIC_BASE_URL}/telephony/twilio/voice`, params),
    ).toBe(true);
    expect(
      twilioWebhooks.validateRequest("another-token-000000", signature, `${TEST_PUBLIC_BASE_URL}/telephony/twilio/voice`, params),
    ).toBe(false);

    const [socket] = platform.sockets;
    expect(socket!.url).toBe("/telephony/twilio/media/session-42");
    const streamSignature = String(socket!.headers["x-twilio-signature"]);
    expect(
      twilioWebhooks.validateRequest(
        TEST_TWILIO_AUTH_TOKEN,
        streamSignature,
        "wss://switchboard.test/telephony/twilio/media/session-42",
        {},
      ),
    ).toBe(true);
    expect(report.sessionId).toBe("session-42");

    const completed = platform.requests.find((request) => request.url === "/telephony/twilio/status")!;
    const status = formOf(completed);
    expect(status).toMatchObject({
      CallSid: report.callId,
      CallStatus: "completed",
      SequenceNumber: "0",
      CallbackSource: "call-progress-events",
    });
    expect(
      twilioWebhooks.validateRequest(
        TEST_TWILIO_AUTH_TOKEN,
        String(completed.headers["x-twilio-signature"]),
        `${TEST_PUBLIC_BASE_URL}/telephony/twilio/status`,
        status,
      ),
    ).toBe(true);
  });

  it("streams the WAV as Twilio media frames: exact shapes, string counters, 20 ms timestamps, audio intact", async () => {
    const platform = await peer({ http: twilioVoiceReply() });
    const original = wavSamples("caller-hello.wav");
    const report = await simulateCall({
      carrier: "twilio",
      baseUrl: platform.url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      utterances: [readWav(readFileSync(join(AUDIO_DIR, "caller-hello.wav")))],
      pauseMs: 0,
      waitForAgent: false,
      dtmf: "4#",
      lingerMs: 200,
      speed: 8,
      twilio: twilioCredentials,
    });
    expect(report.errors).toEqual([]);
    const [socket] = platform.sockets;
    const messages = socket!.messages;
    expect(messages[0]).toEqual({ event: "connected", protocol: "Call", version: "1.0.0" });
    const streamSid = String(messages[1]!.streamSid);
    expect(streamSid).toMatch(/^MZ[0-9a-f]{32}$/);
    expect(messages[1]).toEqual({
      event: "start",
      sequenceNumber: "1",
      streamSid,
      start: {
        accountSid: TEST_TWILIO_ACCOUNT_SID,
        streamSid,
        callSid: report.callId,
        tracks: ["inbound"],
        customParameters: { token: "tok&en<1>" },
        mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
      },
    });
    // Every numbered message counts up by one, as strings; stop is last.
    expect(messages.slice(1).map((message) => message.sequenceNumber)).toEqual(messages.slice(1).map((_, index) => String(index + 1)));
    expect(messages.at(-1)).toEqual({
      event: "stop",
      sequenceNumber: String(messages.length - 1),
      streamSid,
      stop: { accountSid: TEST_TWILIO_ACCOUNT_SID, callSid: report.callId },
    });

    const media = mediaMessages(socket!);
    media.forEach((message, index) => {
      expect(message).toEqual({
        event: "media",
        sequenceNumber: expect.any(String),
        streamSid,
        media: { track: "inbound", chunk: String(index + 1), timestamp: String(index * 20), payload: expect.any(String) },
      });
    });
    const payloads = media.map((message) => Buffer.from(String(field(message, "media", "payload")), "base64"));
    expect(payloads.every((payload) => payload.length === 160)).toBe(true);
    const decoded = alawmulaw.mulaw.decode(concatBytes(payloads));
    expectCloseToG711(decoded.subarray(0, original.length), original);
    expect(decoded.subarray(original.length).every((sample) => sample === 0)).toBe(true); // padding and listening: silence

    const digits = messages.filter((message) => message.event === "dtmf");
    expect(digits.map((message) => message.dtmf)).toEqual([
      { track: "inbound_track", digit: "4" },
      { track: "inbound_track", digit: "#" },
    ]);
    // The keys are pressed after the caller finished speaking.
    const lastSpeechFrame = Math.ceil(original.length / 160);
    expect(messages.indexOf(digits[0]!)).toBeGreaterThan(messages.indexOf(media[lastSpeechFrame - 1]!));
  });

  it("echoes marks after the audio before them has played, at once when nothing is buffered, and all pending on clear", async () => {
    const echoes: Array<{ name: string; callerFramesSoFar: number; message: Record<string, unknown> }> = [];
    let audioSentAtFrame = 0;
    let longAudioSentAtFrame = -1;
    const platform = await peer({
      http: twilioVoiceReply(),
      message: (socket, message) => {
        const streamSid = message.streamSid;
        const callerFrames = mediaMessages(socket).length;
        const sendAudio = (ms: number) => {
          for (const payload of toneFrames(ms)) socket.send({ event: "media", streamSid, media: { payload } });
        };
        if (message.event === "start") {
          socket.send({ event: "mark", streamSid, mark: { name: "empty-buffer" } });
        } else if (message.event === "mark") {
          const name = String(field(message, "mark", "name"));
          echoes.push({ name, callerFramesSoFar: callerFrames, message });
          if (name === "empty-buffer") {
            audioSentAtFrame = callerFrames;
            sendAudio(300);
            socket.send({ event: "mark", streamSid, mark: { name: "after-300ms" } });
          } else if (name === "after-300ms") {
            longAudioSentAtFrame = callerFrames;
            sendAudio(2000);
            socket.send({ event: "mark", streamSid, mark: { name: "pending-1" } });
            socket.send({ event: "mark", streamSid, mark: { name: "pending-2" } });
          }
        } else if (message.event === "media" && longAudioSentAtFrame >= 0 && callerFrames === longAudioSentAtFrame + 5) {
          socket.send({ event: "clear", streamSid });
        }
      },
    });
    const report = await simulateCall({
      carrier: "twilio",
      baseUrl: platform.url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      utterances: [],
      lingerMs: 1500,
      speed: 2,
      twilio: twilioCredentials,
    });
    expect(report.errors).toEqual([]);
    expect(echoes.map((echo) => echo.name)).toEqual(["empty-buffer", "after-300ms", "pending-1", "pending-2"]);
    const streamSid = platform.sockets[0]!.messages[1]!.streamSid;
    for (const echo of echoes) {
      expect(echo.message).toEqual({ event: "mark", sequenceNumber: expect.stringMatching(/^\d+$/), streamSid, mark: { name: echo.name } });
    }
    // Caller frames are paced every 20 ms of media time: 300 ms of agent audio spans ~15 of them.
    const [, afterAudio, pending1, pending2] = echoes;
    expect(afterAudio!.callerFramesSoFar - audioSentAtFrame).toBeGreaterThanOrEqual(12);
    // Cleared marks come back right after the clear, long before 2 s (100 frames) of audio could have played.
    expect(pending1!.callerFramesSoFar - longAudioSentAtFrame).toBeLessThan(50);
    expect(pending2!.callerFramesSoFar).toBe(pending1!.callerFramesSoFar);
    // What the caller heard: the whole 300 ms tone, and only part of the 2 s one.
    const heardMs = report.receivedAudio.filter((sample) => sample !== 0).length / 8;
    expect(heardMs).toBeGreaterThanOrEqual(300);
    expect(heardMs).toBeLessThan(300 + 1000);
    expect(report.stats).toMatchObject({ marksReceived: 4, marksPlayed: 4, clears: 1, agentAudioMs: heardMs });
  });

  it("sends status callbacks signed and numbered, duplicated and newest-first on request", async () => {
    const platform = await peer({ http: twilioVoiceReply() });
    const report = await simulateCall({
      carrier: "twilio",
      baseUrl: platform.url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      utterances: [],
      lingerMs: 100,
      speed: 10,
      twilio: {
        ...twilioCredentials,
        statusEvents: ["initiated", "ringing", "answered", "completed"],
        statusCallbackDelivery: { duplicate: true, reverse: true },
      },
    });
    expect(report.errors).toEqual([]);
    const callbacks = platform.requests.filter((request) => request.url === "/telephony/twilio/status");
    const forms = callbacks.map(formOf);
    expect(forms.map((form) => [form.CallStatus, form.SequenceNumber])).toEqual([
      ["completed", "3"],
      ["completed", "3"],
      ["in-progress", "2"],
      ["in-progress", "2"],
      ["ringing", "1"],
      ["ringing", "1"],
      ["initiated", "0"],
      ["initiated", "0"],
    ]);
    callbacks.forEach((callback, index) => {
      const signature = String(callback.headers["x-twilio-signature"]);
      expect(
        twilioWebhooks.validateRequest(TEST_TWILIO_AUTH_TOKEN, signature, `${TEST_PUBLIC_BASE_URL}/telephony/twilio/status`, forms[index]!),
      ).toBe(true);
      expect(forms[index]!.Timestamp).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$/);
    });
    // A duplicate is a retry: same idempotency token; distinct callbacks have distinct tokens.
    const tokens = callbacks.map((callback) => callback.headers["i-twilio-idempotency-token"]);
    expect(tokens[0]).toBe(tokens[1]);
    expect(new Set(tokens).size).toBe(4);
    expect(forms[0]!.CallDuration).toMatch(/^\d+$/);
    expect(forms[2]!.CallDuration).toBeUndefined();
  });

  it("obeys the platform's REST redirects and hangup: hold TwiML ends the stream, a Url redirect opens a new one", async () => {
    const apis = await carrierApis();
    const updates: number[] = [];
    const platform = await peer({
      http: twilioVoiceReply(),
      message: (socket, message) => {
        if (message.event !== "start") return;
        const callSid = String(field(message, "start", "callSid"));
        const first = platform.sockets.indexOf(socket) === 0;
        // Hold first; resume (a Url redirect back to the voice webhook) once the stream is gone; then hang up.
        const update = first ? [["Twiml", '<Response><Say>Please hold.</Say><Pause length="600"/></Response>']] : [["Status", "completed"]];
        const send = (form: string[][]) =>
          fetch(`${apis.twilioBaseUrl}/2010-04-01/Accounts/${TEST_TWILIO_ACCOUNT_SID}/Calls/${callSid}.json`, {
            method: "POST",
            headers: { Authorization: twilioAuth, "Content-Type": "application/x-www-form-urlencoded" },
            body: new URLSearchParams(form).toString(),
          }).then((response) => void updates.push(response.status));
        void send(update);
        if (first) {
          void platform
            .waitFor("the held stream to close", () => (socket.closed ? true : undefined))
            .then(() => send([["Url", `${TEST_PUBLIC_BASE_URL}/telephony/twilio/voice?resume=1`]]));
        }
      },
    });
    const report = await simulateCall({
      carrier: "twilio",
      baseUrl: platform.url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      utterances: [],
      lingerMs: 60_000,
      speed: 4,
      twilio: { ...twilioCredentials, api: apis.twilio },
    });
    expect(report.errors).toEqual([]);
    expect(updates).toEqual([200, 200, 200]);
    expect(platform.sockets).toHaveLength(2);
    for (const socket of platform.sockets) expect(socket.messages.at(-1)).toMatchObject({ event: "stop" });
    const webhooks = platform.requests.filter((request) => request.url.startsWith("/telephony/twilio/voice"));
    expect(webhooks.map((request) => [request.url, formOf(request).CallStatus])).toEqual([
      ["/telephony/twilio/voice", "ringing"],
      ["/telephony/twilio/voice?resume=1", "in-progress"],
    ]);
    expect(report.finalStatus).toBe("completed");
    const hangupAfterEnd = await fetch(`${apis.twilioBaseUrl}/2010-04-01/Accounts/${TEST_TWILIO_ACCOUNT_SID}/Calls/${report.callId}.json`, {
      method: "POST",
      headers: { Authorization: twilioAuth, "Content-Type": "application/x-www-form-urlencoded" },
      body: "Status=completed",
    });
    expect(hangupAfterEnd.status).toBe(404);
  });

  it("reports a refused webhook and a refused stream upgrade as errors", async () => {
    const refusing = await peer({ http: () => ({ status: 403, body: "bad signature" }) });
    const refused = await simulateCall({ carrier: "twilio", baseUrl: refusing.url, utterances: [], speed: 10, twilio: twilioCredentials });
    expect(refused.ok).toBe(false);
    expect(refused.errors).toContainEqual(expect.stringContaining("voice webhook answered HTTP 403"));
    expect(refused.stats.mediaFramesSent).toBe(0);

    const noUpgrade = await peer({ http: twilioVoiceReply(), refuseUpgrade: () => 403 });
    const report = await simulateCall({ carrier: "twilio", baseUrl: noUpgrade.url, utterances: [], speed: 10, twilio: twilioCredentials });
    expect(report.ok).toBe(false);
    expect(report.errors.join("\n")).toContain("403");
  });
});

/** node:crypto verification with the public key the platform is configured with (raw 32 bytes, base64). */
function telnyxSignatureValid(request: PeerRequest): boolean {
  const publicKey = createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(TEST_TELNYX_PUBLIC_KEY, "base64").toString("base64url") },
    format: "jwk",
  });
  const timestamp = String(request.headers["telnyx-timestamp"]);
  const signature = Buffer.from(String(request.headers["telnyx-signature-ed25519"]), "base64");
  return verify(null, Buffer.from(`${timestamp}|${request.body}`), publicKey, signature);
}

interface TelnyxEvent {
  event_type: string;
  payload: Record<string, unknown>;
}

function telnyxEvents(platform: PlatformPeer): TelnyxEvent[] {
  return platform.requests
    .filter((request) => request.url === "/telephony/telnyx/webhook")
    .map((request) => (JSON.parse(request.body) as { data: TelnyxEvent }).data);
}

async function telnyxAction(apis: CarrierApis, callControlId: string, action: string, body: unknown, key = TELNYX_API_KEY) {
  const response = await fetch(`${apis.telnyxBaseUrl}/v2/calls/${encodeURIComponent(callControlId)}/actions/${action}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as unknown };
}

describe("simulated Telnyx inbound call through the fake Call Control API", () => {
  it("signs webhooks, follows answer with call.answered, streams per the command, and ends with call.hangup", async () => {
    let apis: CarrierApis | undefined;
    const answers: Array<{ status: number; body: unknown }> = [];
    const platform = await peer({
      http: async (request) => {
        const event = (JSON.parse(request.body) as { data: TelnyxEvent }).data;
        if (event.event_type === "call.initiated") {
          const answer = {
            stream_url: "wss://switchboard.test/telephony/telnyx/media/session-7/secret-token",
            stream_track: "inbound_track",
            stream_bidirectional_mode: "rtp",
            stream_bidirectional_codec: "PCMA",
            command_id: "answer-1",
            client_state: Buffer.from("session-7").toString("base64"),
          };
          // Answer after replying 200, as a platform would from its own request context.
          setImmediate(
            () => void telnyxAction(apis!, String(event.payload.call_control_id), "answer", answer).then((reply) => answers.push(reply)),
          );
        }
        return { status: 200 };
      },
      message: (socket, message) => {
        if (message.event === "start") {
          for (const payload of toneFrames(100, "PCMA")) socket.send({ event: "media", media: { payload } });
          socket.send({ event: "mark", mark: { name: "greeting-done" } });
        }
      },
    });
    apis = await carrierApis({ platform: { baseUrl: platform.url, publicBaseUrl: TEST_PUBLIC_BASE_URL } });
    const original = wavSamples("caller-goodbye.wav");
    const report = await simulateCall({
      carrier: "telnyx",
      baseUrl: platform.url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      from: "+15550003333",
      to: "+15550004444",
      utterances: [readWav(readFileSync(join(AUDIO_DIR, "caller-goodbye.wav")))],
      pauseMs: 0,
      waitForAgent: false,
      dtmf: "7",
      lingerMs: 300,
      speed: 8,
      telnyx: { api: apis.telnyx, media: { reorderWindow: 4, duplicateEvery: 10, seed: 7 } },
    });
    expect(report.errors).toEqual([]);
    expect(answers).toEqual([{ status: 200, body: { data: { result: "ok" } } }]);
    expect(report.sessionId).toBe("session-7");

    const webhookRequests = platform.requests.filter((request) => request.url === "/telephony/telnyx/webhook");
    expect(webhookRequests.every(telnyxSignatureValid)).toBe(true);
    const tampered = { ...webhookRequests[0]!, body: webhookRequests[0]!.body.replace("+15550004444", "+15550009999") };
    expect(telnyxSignatureValid(tampered)).toBe(false);
    const events = telnyxEvents(platform);
    expect(events.map((event) => event.event_type)).toEqual([
      "call.initiated",
      "call.answered",
      "streaming.started",
      "call.dtmf.received",
      "streaming.stopped",
      "call.hangup",
    ]);
    const [initiated, answered, , dtmf, , hangup] = events;
    expect(initiated!.payload).toMatchObject({
      call_control_id: report.callId,
      direction: "incoming",
      state: "parked",
      from: "+15550003333",
      to: "+15550004444",
    });
    expect(initiated!.payload).not.toHaveProperty("client_state");
    expect(String(initiated!.payload.call_control_id)).toMatch(/^v3:/);
    const clientState = Buffer.from("session-7").toString("base64");
    expect(answered!.payload).toMatchObject({ call_control_id: report.callId, client_state: clientState });
    expect(dtmf!.payload).toMatchObject({ digit: "7" });
    expect(hangup!.payload).toMatchObject({ hangup_cause: "normal_clearing", hangup_source: "caller", client_state: clientState });

    const [socket] = platform.sockets;
    expect(socket!.url).toBe("/telephony/telnyx/media/session-7/secret-token");
    expect(socket!.headers["x-twilio-signature"]).toBeUndefined();
    const streamId = String(socket!.messages[1]!.stream_id);
    expect(socket!.messages[0]).toEqual({ event: "connected", version: "1.0.0" });
    expect(socket!.messages[1]).toEqual({
      event: "start",
      sequence_number: "1",
      stream_id: streamId,
      start: {
        call_control_id: report.callId,
        call_session_id: answered!.payload.call_session_id,
        from: "+15550003333",
        to: "+15550004444",
        client_state: clientState,
        media_format: { encoding: "PCMA", sample_rate: 8000, channels: 1 },
      },
    });
    const markEcho = socket!.messages.find((message) => message.event === "mark");
    expect(markEcho).toEqual({
      event: "mark",
      sequence_number: expect.stringMatching(/^\d+$/),
      stream_id: streamId,
      mark: { name: "greeting-done" },
    });
    expect(socket!.messages.find((message) => message.event === "dtmf")).toMatchObject({ stream_id: streamId, dtmf: { digit: "7" } });
    expect(socket!.messages.at(-1)).toMatchObject({ event: "stop", stream_id: streamId, stop: { call_control_id: report.callId } });

    // Out of order within blocks of 4, every 10th frame twice; sorted and de-duplicated it is the WAV again.
    const media = mediaMessages(socket!);
    const chunks = media.map((message) => Number(field(message, "media", "chunk")));
    const firstCopies = chunks.filter((chunk, index) => chunks.indexOf(chunk) === index);
    expect(firstCopies).not.toEqual([...firstCopies].sort((a, b) => a - b));
    for (const [position, chunk] of firstCopies.entries()) expect(Math.floor((chunk - 1) / 4)).toBe(Math.floor(position / 4));
    expect([...firstCopies].sort((a, b) => a - b)).toEqual(firstCopies.map((_, index) => index + 1));
    expect(chunks.length - firstCopies.length).toBe(Math.floor(firstCopies.length / 10));
    for (const message of media) {
      const chunk = Number(field(message, "media", "chunk"));
      expect(field(message, "media", "timestamp")).toBe(String((chunk - 1) * 20));
      expect(field(message, "media", "track")).toBe("inbound");
    }
    const ordered = firstCopies
      .map((chunk) => media.find((message) => field(message, "media", "chunk") === String(chunk))!)
      .sort((a, b) => Number(field(a, "media", "chunk")) - Number(field(b, "media", "chunk")));
    const decoded = alawmulaw.alaw.decode(
      concatBytes(ordered.map((message) => Buffer.from(String(field(message, "media", "payload")), "base64"))),
    );
    expectCloseToG711(decoded.subarray(0, original.length), original);

    // The call is over: Telnyx refuses further commands with 90018; the answer went through the request log.
    const late = await telnyxAction(apis, report.callId, "hangup", { command_id: "late-hangup" });
    expect(late).toEqual({ status: 422, body: { errors: [expect.objectContaining({ code: "90018", title: "Call has already ended" })] } });
    expect(
      apis.control.requests({ carrier: "telnyx", callId: report.callId }).map((request) => [request.path.split("/").pop(), request.status]),
    ).toEqual([
      ["answer", 200],
      ["hangup", 422],
    ]);
  });
});

describe("fake Twilio REST API", () => {
  const callsUrl = (apis: CarrierApis) => `${apis.twilioBaseUrl}/2010-04-01/Accounts/${TEST_TWILIO_ACCOUNT_SID}/Calls.json`;
  const post = (url: string, form: [string, string][], authorization = twilioAuth) =>
    fetch(url, {
      method: "POST",
      headers: { Authorization: authorization, "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form).toString(),
    });

  it("answers 401 without the account's Basic credentials", async () => {
    const apis = await carrierApis();
    const form: [string, string][] = [
      ["To", "+15550001000"],
      ["From", "+15550002000"],
      ["Url", "https://switchboard.test/v"],
    ];
    const wrong = `Basic ${Buffer.from(`${TEST_TWILIO_ACCOUNT_SID}:not-the-token`).toString("base64")}`;
    for (const response of [await post(callsUrl(apis), form, ""), await post(callsUrl(apis), form, wrong)]) {
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ code: 20003, status: 401 });
    }
  });

  it("creates calls (201), hangs them up (200), then answers 20404; records requests without credentials", async () => {
    const apis = await carrierApis();
    const created = await post(callsUrl(apis), [
      ["To", "+15550001001"],
      ["From", "+15550002000"],
      ["Url", "https://switchboard.test/telephony/twilio/voice"],
      ["StatusCallback", "https://switchboard.test/telephony/twilio/status"],
      ["StatusCallbackEvent", "initiated"],
      ["StatusCallbackEvent", "completed"],
    ]);
    expect(created.status).toBe(201);
    const call = (await created.json()) as Record<string, unknown>;
    expect(call).toMatchObject({
      status: "queued",
      to: "+15550001001",
      from: "+15550002000",
      direction: "outbound-api",
      account_sid: TEST_TWILIO_ACCOUNT_SID,
    });
    expect(String(call.sid)).toMatch(/^CA[0-9a-f]{32}$/);
    const callUrl = `${apis.twilioBaseUrl}/2010-04-01/Accounts/${TEST_TWILIO_ACCOUNT_SID}/Calls/${String(call.sid)}.json`;

    const hangup = await post(callUrl, [["Status", "completed"]]);
    expect(hangup.status).toBe(200);
    expect(await hangup.json()).toMatchObject({ sid: call.sid, status: "completed" });
    for (const url of [callUrl, callUrl.replace(String(call.sid), `CA${"f".repeat(32)}`)]) {
      const again = await post(url, [["Status", "completed"]]);
      expect(again.status).toBe(404);
      expect(await again.json()).toEqual({
        code: 20404,
        message: `The requested resource ${new URL(url).pathname} was not found`,
        more_info: "https://www.twilio.com/docs/errors/20404",
        status: 404,
      });
    }

    const logged = (await (await fetch(`${apis.controlUrl}/__sim/requests?to=%2B15550001001`)).json()) as Array<Record<string, unknown>>;
    // The unknown call's request has no number to be found by.
    expect(logged.map((request) => [request.method, request.status])).toEqual([
      ["POST", 201],
      ["POST", 200],
      ["POST", 404],
    ]);
    expect(logged[0]).toMatchObject({ carrier: "twilio", callId: call.sid, body: { StatusCallbackEvent: ["initiated", "completed"] } });
    expect(logged[0]!.headers).not.toHaveProperty("authorization");
  });

  it("injects faults keyed by the dialled number, over HTTP, for the given number of requests", async () => {
    const apis = await carrierApis();
    const fault = await fetch(`${apis.controlUrl}/__sim/faults`, {
      method: "PUT",
      body: JSON.stringify({ match: { to: "+15550001002" }, status: 503, times: 1 }),
    });
    expect(fault.status).toBe(204);
    const dial = (to: string) =>
      post(callsUrl(apis), [
        ["To", to],
        ["From", "+15550002000"],
        ["Twiml", "<Response/>"],
      ]);
    const first = await dial("+15550001002");
    expect(first.status).toBe(503);
    expect(await first.json()).toMatchObject({ status: 503 });
    expect((await dial("+15550001003")).status).toBe(201); // another test's number is unaffected
    expect((await dial("+15550001002")).status).toBe(201); // times: 1 is used up

    await fetch(`${apis.controlUrl}/__sim/faults`, {
      method: "PUT",
      body: JSON.stringify({ match: { path: "/Calls.json" }, status: 500 }),
    });
    expect((await dial("+15550001004")).status).toBe(500);
    expect((await fetch(`${apis.controlUrl}/__sim/faults`, { method: "DELETE" })).status).toBe(204);
    expect((await dial("+15550001004")).status).toBe(201);
    const bad = await fetch(`${apis.controlUrl}/__sim/faults`, { method: "PUT", body: JSON.stringify({ match: {}, status: 500 }) });
    expect(bad.status).toBe(400);
  });

  it("starts and stops recordings on live calls only", async () => {
    const apis = await carrierApis();
    const call = (await (
      await post(callsUrl(apis), [
        ["To", "+15550001005"],
        ["From", "+15550002000"],
        ["Url", "https://switchboard.test/v"],
      ])
    ).json()) as { sid: string };
    const recordingsUrl = `${apis.twilioBaseUrl}/2010-04-01/Accounts/${TEST_TWILIO_ACCOUNT_SID}/Calls/${call.sid}/Recordings.json`;
    const started = await post(recordingsUrl, [["RecordingChannels", "dual"]]);
    expect(started.status).toBe(201);
    const recording = (await started.json()) as { sid: string; status: string; channels: number; call_sid: string };
    expect(recording).toMatchObject({ status: "in-progress", channels: 2, call_sid: call.sid });
    expect(recording.sid).toMatch(/^RE[0-9a-f]{32}$/);
    const stopped = await post(recordingsUrl.replace(".json", `/${recording.sid}.json`), [["Status", "stopped"]]);
    expect(await stopped.json()).toMatchObject({ sid: recording.sid, status: "stopped" });
    await post(callsUrl(apis).replace(".json", `/${call.sid}.json`), [["Status", "completed"]]);
    expect((await post(recordingsUrl, [])).status).toBe(404);
  });

  it("drives an outbound call into the platform: status callbacks, the signed Url webhook, a stream; REST hangup ends it", async () => {
    const platform = await peer({ http: twilioVoiceReply("wss://switchboard.test/telephony/twilio/media/outbound-1") });
    const apis = await carrierApis({ platform: { baseUrl: platform.url, publicBaseUrl: TEST_PUBLIC_BASE_URL } });
    const voiceUrl = "https://switchboard.test/telephony/twilio/voice?session=outbound-1";
    const created = await post(callsUrl(apis), [
      ["To", "+15550001006"],
      ["From", "+15550002000"],
      ["Url", voiceUrl],
      ["StatusCallback", "https://switchboard.test/telephony/twilio/status"],
      ...["initiated", "ringing", "answered", "completed"].map((event): [string, string] => ["StatusCallbackEvent", event]),
    ]);
    const { sid } = (await created.json()) as { sid: string };
    const socket = await platform.waitFor("the outbound stream", () =>
      platform.sockets.find((candidate) => candidate.messages.some((m) => m.event === "media")),
    );

    const webhook = platform.requests.find((request) => request.url.startsWith("/telephony/twilio/voice"))!;
    expect(webhook.url).toBe("/telephony/twilio/voice?session=outbound-1");
    const params = formOf(webhook);
    expect(params).toMatchObject({ CallSid: sid, CallStatus: "in-progress", Direction: "outbound-api", To: "+15550001006" });
    expect(twilioWebhooks.validateRequest(TEST_TWILIO_AUTH_TOKEN, String(webhook.headers["x-twilio-signature"]), voiceUrl, params)).toBe(
      true,
    );
    expect(socket.messages[1]).toMatchObject({ event: "start", start: { callSid: sid, customParameters: { token: "tok&en<1>" } } });

    const hangup = await post(callsUrl(apis).replace(".json", `/${sid}.json`), [["Status", "completed"]]);
    expect(await hangup.json()).toMatchObject({ status: "completed" });
    await platform.waitFor("the stream to stop", () => (socket.closed ? true : undefined));
    expect(socket.messages.at(-1)).toMatchObject({ event: "stop" });
    const statuses = await platform.waitFor("four status callbacks", () => {
      const forms = platform.requests.filter((request) => request.url === "/telephony/twilio/status").map(formOf);
      return forms.length === 4 ? forms : undefined;
    });
    const bySequence = [...statuses].sort((a, b) => Number(a.SequenceNumber) - Number(b.SequenceNumber));
    expect(bySequence.map((form) => form.CallStatus)).toEqual(["initiated", "ringing", "in-progress", "completed"]);
    expect(bySequence[3]!.CallDuration).toMatch(/^\d+$/);
  });

  it("runs asynchronous machine detection: a signed AsyncAmdStatusCallback after the beep, then the voicemail's <Say>", async () => {
    const platform = await peer({ http: twilioVoiceReply("wss://switchboard.test/telephony/twilio/media/amd-1") });
    const apis = await carrierApis({ platform: { baseUrl: platform.url, publicBaseUrl: TEST_PUBLIC_BASE_URL } });
    apis.control.setCallee("+15550001007", { outcome: "answer", answeredBy: "machine" });
    const amdUrl = "https://switchboard.test/telephony/twilio/amd?sessionId=amd-1";
    const created = await post(callsUrl(apis), [
      ["To", "+15550001007"],
      ["From", "+15550002000"],
      ["Url", "https://switchboard.test/telephony/twilio/voice?sessionId=amd-1"],
      ["StatusCallback", "https://switchboard.test/telephony/twilio/status"],
      ["MachineDetection", "DetectMessageEnd"],
      ["AsyncAmd", "true"],
      ["AsyncAmdStatusCallback", amdUrl],
      ["AsyncAmdStatusCallbackMethod", "POST"],
    ]);
    const { sid } = (await created.json()) as { sid: string };
    const amd = await platform.waitFor("the AMD verdict", () =>
      platform.requests.find((request) => request.url.startsWith("/telephony/twilio/amd")),
    );
    const params = formOf(amd);
    expect(params).toMatchObject({ CallSid: sid, AccountSid: TEST_TWILIO_ACCOUNT_SID, AnsweredBy: "machine_end_beep" });
    expect(twilioWebhooks.validateRequest(TEST_TWILIO_AUTH_TOKEN, String(amd.headers["x-twilio-signature"]), amdUrl, params)).toBe(true);

    const voicemail = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Please call Acme back.</Say><Hangup/></Response>';
    const update = await post(callsUrl(apis).replace(".json", `/${sid}.json`), [["Twiml", voicemail]]);
    expect(update.status).toBe(200);
    const call = apis.twilio.call(sid);
    await platform.waitFor("the call to end", () =>
      platform.requests.some((request) => request.url.startsWith("/telephony/twilio/status") && formOf(request).CallStatus === "completed")
        ? true
        : undefined,
    );
    expect(call && "said" in call ? call.said : []).toEqual(["Please call Acme back."]);
  });
});

describe("simulated Telnyx inbound call answered for consent", () => {
  it("answered without a stream, says the speak's text, reports call.speak.ended, then streams on streaming_start", async () => {
    let apis: CarrierApis | undefined;
    const consent = "This call is recorded.";
    const act = (event: TelnyxEvent, action: string, body: Record<string, unknown>) =>
      setImmediate(() => void telnyxAction(apis!, String(event.payload.call_control_id), action, body));
    const platform = await peer({
      http: async (request) => {
        const event = (JSON.parse(request.body) as { data: TelnyxEvent }).data;
        if (event.event_type === "call.initiated") act(event, "answer", { command_id: "consent-answer" });
        if (event.event_type === "call.answered") act(event, "speak", { payload: consent, command_id: "consent-speak" });
        if (event.event_type === "call.speak.ended") {
          act(event, "streaming_start", {
            stream_url: "wss://switchboard.test/telephony/telnyx/media/session-9/secret-token",
            stream_track: "inbound_track",
            stream_bidirectional_mode: "rtp",
            stream_bidirectional_codec: "PCMU",
            command_id: "consent-stream",
          });
        }
        return { status: 200 };
      },
    });
    apis = await carrierApis({ platform: { baseUrl: platform.url, publicBaseUrl: TEST_PUBLIC_BASE_URL } });
    const report = await simulateCall({
      carrier: "telnyx",
      baseUrl: platform.url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      from: "+15550003333",
      to: "+15550004445",
      utterances: [readWav(readFileSync(join(AUDIO_DIR, "caller-goodbye.wav")))],
      pauseMs: 0,
      waitForAgent: false,
      lingerMs: 300,
      speed: 8,
      telnyx: { api: apis.telnyx },
    });
    expect(report.errors).toEqual([]);
    expect(report.sessionId).toBe("session-9");
    // Nothing streamed until the consent had been said: the stream's events follow call.speak.ended.
    expect(telnyxEvents(platform).map((event) => event.event_type)).toEqual([
      "call.initiated",
      "call.answered",
      "call.speak.started",
      "call.speak.ended",
      "streaming.started",
      "streaming.stopped",
      "call.hangup",
    ]);
    const call = apis.telnyx.call(report.callId);
    expect(call && "said" in call ? call.said : []).toEqual([consent]);
    expect(platform.sockets.map((socket) => socket.url)).toEqual(["/telephony/telnyx/media/session-9/secret-token"]);
  });
});

describe("fake Telnyx REST API", () => {
  const dial = (apis: CarrierApis, body: Record<string, unknown>, key = TELNYX_API_KEY) =>
    fetch(`${apis.telnyxBaseUrl}/v2/calls`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });

  it("requires the Bearer key, validates dials, and answers with the call's ids", async () => {
    const apis = await carrierApis();
    const dialBody = { connection_id: "conn-1", to: "+15550005001", from: "+15550002000" };
    const unauthorized = await dial(apis, dialBody, "wrong-key");
    expect(unauthorized.status).toBe(401);
    expect(await unauthorized.json()).toMatchObject({ errors: [{ code: "10009" }] });
    const invalid = await dial(apis, { connection_id: "conn-1", from: "+15550002000" });
    expect(invalid.status).toBe(422);
    const dialled = await dial(apis, dialBody);
    expect(dialled.status).toBe(200);
    const { data } = (await dialled.json()) as { data: Record<string, unknown> };
    expect(data).toEqual({
      call_control_id: expect.stringMatching(/^v3:/),
      call_leg_id: expect.any(String),
      call_session_id: expect.any(String),
      is_alive: false,
      record_type: "call",
    });
    const id = String(data.call_control_id);
    expect((await telnyxAction(apis, id, "answer", {}, "wrong-key")).status).toBe(401);

    // Same command_id twice: executed once (hangup would otherwise make the second a 422).
    expect(await telnyxAction(apis, id, "hangup", { command_id: "bye-1" })).toEqual({ status: 200, body: { data: { result: "ok" } } });
    expect(await telnyxAction(apis, id, "hangup", { command_id: "bye-1" })).toEqual({ status: 200, body: { data: { result: "ok" } } });
    expect((await telnyxAction(apis, id, "hangup", { command_id: "bye-2" })).status).toBe(422);
    expect(apis.control.requests({ callId: id }).map((request) => request.note ?? "")).toEqual([
      "",
      "",
      "",
      "duplicate command_id bye-1: ignored",
      "",
    ]);
  });

  it("injects faults keyed by call id and clears them", async () => {
    const apis = await carrierApis();
    const { data } = (await (await dial(apis, { connection_id: "c", to: "+15550005002", from: "+15550002000" })).json()) as {
      data: { call_control_id: string };
    };
    const id = data.call_control_id;
    apis.control.addFault({ match: { callId: id, path: "/actions/hangup" }, status: 500, times: 1 });
    const failed = await telnyxAction(apis, id, "hangup", {});
    expect(failed).toEqual({ status: 500, body: { errors: [expect.objectContaining({ code: "10007" })] } });
    expect((await telnyxAction(apis, "v3:someone-elses-call", "hangup", {})).status).toBe(200);
    expect((await telnyxAction(apis, id, "hangup", {})).status).toBe(200);
    expect(apis.control.requests({ callId: id })[1]!.fault).toMatchObject({ status: 500 });
  });

  it("drives a dial to a busy number: call.initiated (outgoing), then call.hangup user_busy", async () => {
    const platform = await peer();
    const apis = await carrierApis({ platform: { baseUrl: platform.url, publicBaseUrl: TEST_PUBLIC_BASE_URL } });
    const busy = await fetch(`${apis.controlUrl}/__sim/callees`, {
      method: "PUT",
      body: JSON.stringify({ to: "+15550005003", outcome: "busy" }),
    });
    expect(busy.status).toBe(204);
    const clientState = Buffer.from("dial-1").toString("base64");
    const dialled = await dial(apis, {
      connection_id: "c",
      to: "+15550005003",
      from: "+15550002000",
      client_state: clientState,
      webhook_url: "https://switchboard.test/telephony/telnyx/webhook",
    });
    const { data } = (await dialled.json()) as { data: { call_control_id: string } };
    const events = await platform.waitFor("call.hangup", () => {
      const received = telnyxEvents(platform);
      return received.some((event) => event.event_type === "call.hangup") ? received : undefined;
    });
    expect(events.map((event) => event.event_type)).toEqual(["call.initiated", "call.hangup"]);
    expect(events[0]!.payload).toMatchObject({
      call_control_id: data.call_control_id,
      direction: "outgoing",
      state: "bridging",
      client_state: clientState,
    });
    expect(events[1]!.payload).toMatchObject({ hangup_cause: "user_busy", hangup_source: "callee" });
    expect(platform.requests.every(telnyxSignatureValid)).toBe(true);
    expect((await telnyxAction(apis, data.call_control_id, "answer", {})).status).toBe(422);
  });

  it("dials with greeting_end detection: detection.ended (machine), greeting.ended (beep), then speak and speak.ended", async () => {
    const platform = await peer();
    const apis = await carrierApis({ platform: { baseUrl: platform.url, publicBaseUrl: TEST_PUBLIC_BASE_URL } });
    apis.control.setCallee("+15550005004", { outcome: "answer", answeredBy: "machine" });
    const dialled = await dial(apis, {
      connection_id: "c",
      to: "+15550005004",
      from: "+15550002000",
      webhook_url: "https://switchboard.test/telephony/telnyx/webhook",
      answering_machine_detection: "greeting_end",
    });
    const { data } = (await dialled.json()) as { data: { call_control_id: string } };
    const machineEvents = await platform.waitFor("the greeting's end", () => {
      const received = telnyxEvents(platform).filter((event) => event.event_type.startsWith("call.machine."));
      return received.length === 2 ? received : undefined;
    });
    expect(machineEvents.map((event) => [event.event_type, event.payload.result])).toEqual([
      ["call.machine.detection.ended", "machine"],
      ["call.machine.greeting.ended", "beep_detected"],
    ]);
    expect(platform.requests.every(telnyxSignatureValid)).toBe(true);
    expect(
      (await telnyxAction(apis, data.call_control_id, "speak", { payload: "Please call Acme back.", command_id: "vm-1" })).status,
    ).toBe(200);
    await platform.waitFor("call.speak.ended", () =>
      telnyxEvents(platform).some((event) => event.event_type === "call.speak.ended") ? true : undefined,
    );
    const call = apis.telnyx.call(data.call_control_id);
    expect(call && "said" in call ? call.said : []).toEqual(["Please call Acme back."]);
    expect((await telnyxAction(apis, data.call_control_id, "hangup", { command_id: "vm-2" })).status).toBe(200);
  });
});

describe("global setup", () => {
  it("provides the fake carrier APIs to the tests and the Worker", async () => {
    const simulators = inject("simulators");
    expect(simulators.TWILIO_API_BASE).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(simulators.TELNYX_API_BASE).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const log = await fetch(`${simulators.CARRIER_SIM_CONTROL_URL}/__sim/requests?callId=none`);
    expect(await log.json()).toEqual([]);
  });
});

describe("npm run simulate", () => {
  const runCli = (args: string[], env: Record<string, string>) =>
    new Promise<{ code: number; stdout: string }>((resolve) => {
      const cwd = mkdtempSync(join(tmpdir(), "simulate-"));
      cleanups.push(async () => rmSync(cwd, { recursive: true, force: true }));
      execFile(
        process.execPath,
        [fileURLToPath(new URL("../simulators/simulate.ts", import.meta.url)), ...args.map((arg) => arg.replace("{cwd}", cwd))],
        { cwd, env: { ...process.env, ...env } },
        (error, stdout) => resolve({ code: error ? Number(error.code) : 0, stdout }),
      );
    });

  it("places a Twilio call from a WAV, prints the timeline and turn latency, writes what it heard, exits 0", async () => {
    const platform = await peer({
      http: twilioVoiceReply(),
      message: (socket, message) => {
        // The "agent" answers once the caller's 3.1 s turn (after 100 ms of silence) is over.
        if (message.event === "media" && mediaMessages(socket).length === 170) {
          for (const payload of toneFrames(400)) socket.send({ event: "media", streamSid: message.streamSid, media: { payload } });
        }
      },
    });
    const args = [
      "--carrier",
      "twilio",
      "--audio",
      join(AUDIO_DIR, "caller-goodbye.wav"),
      "--base",
      platform.url,
      "--public-url",
      TEST_PUBLIC_BASE_URL,
    ];
    const options = ["--speed", "8", "--pause-ms", "100", "--linger-ms", "1000", "--barge-in", "--out", "{cwd}/heard.wav"];
    const env = { TWILIO_ACCOUNT_SID: TEST_TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN: TEST_TWILIO_AUTH_TOKEN };
    const result = await runCli([...args, ...options], env);
    expect(result.stdout).toContain("media-connected");
    expect(result.stdout).toMatch(/caller turn 1 ended at \d+ ms → first agent audio: \d+ ms/);
    expect(result.code).toBe(0);
    const heard = readWav(readFileSync(result.stdout.match(/agent audio written to (.+)/)![1]!.trim()));
    expect(heard.filter((sample) => sample !== 0).length).toBe(400 * 8);

    platform.handlers = { http: () => ({ status: 403 }) };
    const refused = await runCli([...args, ...options], env);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain("voice webhook answered HTTP 403");
  });
});
