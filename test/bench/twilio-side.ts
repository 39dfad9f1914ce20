/**
 * Twilio's side of a benchmark call, shared by the call benchmarks (load.bench.ts, switch.bench.ts): a signed
 * voice webhook → TwiML → signed media upgrade → connected/start → 20 ms µ-law frames in real time → marks echoed as
 * the agent's audio "plays" (real time), `clear` honoured → stop → `completed` status callback. Light per frame: one
 * JSON.parse per platform message, no audio decoding. Times: `preciseNow()` (performance.timeOrigin +
 * performance.now()), the provider simulator recorder's clock. Also the benchmarks' statistics and tables.
 */
import WebSocket from "ws";
import { encodeG711, FRAME_MS, SAMPLES_PER_FRAME } from "../simulators/carriers/audio.ts";
import { encodeForm } from "../simulators/carriers/http.ts";
import { twilioSid, uuid } from "../simulators/carriers/ids.ts";
import { type FormParams, twilioSignature } from "../simulators/carriers/signing.ts";
import { headOf, preciseNow } from "../simulators/providers/recorder.ts";
import { TEST_PUBLIC_BASE_URL, TEST_TWILIO_ACCOUNT_SID, TEST_TWILIO_AUTH_TOKEN } from "../support/test-settings.ts";

export const WEBHOOK_TIMEOUT_MS = 30_000;
export const HANDSHAKE_TIMEOUT_MS = 30_000;

// ── statistics ──────────────────────────────────────────────────────────────────────────────────────────────

export interface Summary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarize(values: number[]): Summary | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1]! };
}

export function table(title: string, header: string[], rows: string[][]): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`;
  return [`\n${title}`, line(header), `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

export const ms = (value: number | undefined) => (value === undefined ? "–" : value.toFixed(2));

// ── one call, Twilio's side ─────────────────────────────────────────────────────────────────────────────────

export interface CallState {
  key: string;
  callSid: string;
  streamSid: string;
  ip: string;
  socket: WebSocket | null;
  streamStartedAt: number;
  frameCount: number;
  nextFrame: number;
  sequenceNumber: number;
  sentAt: Float64Array;
  agentMediaAt: number[];
  /** The first four bytes of each agent media payload, in arrival order (matched to the simulator's chunks). */
  agentMediaHeads: number[];
  clearsAt: number[];
  /** Playback of the agent's audio, in real time: marks are echoed once what was sent before them has played. */
  playingUntil: number;
  pendingMarks: Array<{ name: string; due: number }>;
  markTimer: ReturnType<typeof setTimeout> | null;
  phase: "webhook" | "connecting" | "streaming" | "tail" | "done";
  failure: string | null;
  webhookMs: number | null;
  /** When (preciseNow) the voice webhook was sent, its TwiML came back and the media socket opened: `--timeline`'s setup steps. */
  setupAt: { webhook: number; answered: number; opened: number };
  /** The platform's session id, from the TwiML's stream URL. */
  sessionId: string | null;
}

export const publicVoiceUrl = `${TEST_PUBLIC_BASE_URL}/telephony/twilio/voice`;
export const publicStatusUrl = `${TEST_PUBLIC_BASE_URL}/telephony/twilio/status`;

export async function postSigned(platformUrl: string, publicUrl: string, call: CallState, params: FormParams): Promise<Response> {
  return fetch(publicUrl.replace(TEST_PUBLIC_BASE_URL, platformUrl), {
    method: "POST",
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      "X-Twilio-Signature": twilioSignature(TEST_TWILIO_AUTH_TOKEN, publicUrl, params),
      "I-Twilio-Idempotency-Token": uuid(),
      "X-Correlation-ID": call.key,
      // The call's own source address (see load.bench.ts).
      "CF-Connecting-IP": call.ip,
    },
    body: encodeForm(params),
    signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
  });
}

export function callParams(call: CallState, to: string, status: string): FormParams {
  return {
    CallSid: call.callSid,
    AccountSid: TEST_TWILIO_ACCOUNT_SID,
    From: "+15557770000",
    To: to,
    Caller: "+15557770000",
    Called: to,
    CallStatus: status,
    Direction: "inbound",
    ApiVersion: "2010-04-01",
  };
}

export function send(call: CallState, message: string): void {
  if (call.socket?.readyState === WebSocket.OPEN) call.socket.send(message);
}

export function echoDueMarks(call: CallState): void {
  call.markTimer = null;
  const now = performance.now();
  while (call.pendingMarks.length > 0 && call.pendingMarks[0]!.due <= now) {
    const mark = call.pendingMarks.shift()!;
    send(
      call,
      `{"event":"mark","sequenceNumber":"${++call.sequenceNumber}","streamSid":"${call.streamSid}","mark":{"name":${JSON.stringify(mark.name)}}}`,
    );
  }
  const next = call.pendingMarks[0];
  if (next) call.markTimer = setTimeout(() => echoDueMarks(call), Math.max(0, next.due - now));
}

/** What the platform sends on the media socket; kept light: one JSON.parse per message, no audio decoding. */
export function onPlatformMessage(call: CallState, data: WebSocket.RawData): void {
  const at = preciseNow();
  const message = JSON.parse(data.toString()) as { event?: string; media?: { payload?: string }; mark?: { name?: string } };
  if (message.event === "media") {
    call.agentMediaAt.push(at);
    const payload = message.media?.payload ?? "";
    call.agentMediaHeads.push(headOf(Buffer.from(payload.slice(0, 8), "base64")));
    const padding = payload.endsWith("==") ? 2 : payload.endsWith("=") ? 1 : 0;
    const durationMs = ((payload.length * 3) / 4 - padding) / 8; // µ-law, 8 bytes a millisecond
    call.playingUntil = Math.max(performance.now(), call.playingUntil) + durationMs;
  } else if (message.event === "mark" && typeof message.mark?.name === "string") {
    call.pendingMarks.push({ name: message.mark.name, due: call.playingUntil });
    if (!call.markTimer) call.markTimer = setTimeout(() => echoDueMarks(call), Math.max(0, call.playingUntil - performance.now()));
  } else if (message.event === "clear") {
    call.clearsAt.push(at);
    // Twilio drops the unplayed audio and echoes every pending mark.
    call.playingUntil = performance.now();
    for (const mark of call.pendingMarks) mark.due = 0;
    if (call.markTimer) clearTimeout(call.markTimer);
    echoDueMarks(call);
  }
}

/** A call as the carrier places it: the voice webhook, then the media stream its TwiML names. */
export async function startCall(platformUrl: string, call: CallState, to: string, onStreaming: () => void): Promise<void> {
  await openMediaStream(platformUrl, call, await answerCall(platformUrl, call, to), onStreaming);
}

/** What the voice webhook's TwiML answered: the media stream's URL and its credential. */
export interface StreamAnswer {
  streamUrl: string;
  token: string;
}

/** The signed voice webhook of a ringing call, and the stream its TwiML answered with. */
export async function answerCall(platformUrl: string, call: CallState, to: string): Promise<StreamAnswer> {
  const started = performance.now();
  call.setupAt.webhook = preciseNow();
  const response = await postSigned(platformUrl, publicVoiceUrl, call, callParams(call, to, "ringing"));
  const twiml = await response.text();
  call.webhookMs = performance.now() - started;
  call.setupAt.answered = preciseNow();
  const streamUrl = /<Stream url="([^"]+)"/.exec(twiml)?.[1];
  const token = /<Parameter name="token" value="([^"]+)"/.exec(twiml)?.[1];
  // A call the platform shed (or refused at a limit) hears the busy message: counted apart from the calls that broke.
  if (response.status === 200 && /<Say>[^<]*<\/Say><Hangup\/>/.test(twiml)) throw new Error("turned away: the busy message");
  if (response.status !== 200 || !streamUrl || !token) throw new Error(`voice webhook: HTTP ${response.status} ${twiml.slice(0, 160)}`);
  call.sessionId = /\/telephony\/twilio\/media\/([^/?"]+)/.exec(streamUrl)?.[1] ?? null;
  return { streamUrl, token };
}

/** The media stream of an answered call: the upgrade signed as Twilio signs it, `connected` and `start`. */
export async function openMediaStream(
  platformUrl: string,
  call: CallState,
  { streamUrl, token }: StreamAnswer,
  onStreaming: () => void,
): Promise<void> {
  call.phase = "connecting";
  // Signed for the public wss:// URL the TwiML names; connected to where this process reaches the worker.
  const socket = new WebSocket(streamUrl.replace(/^wss:\/\/[^/]+/, platformUrl.replace(/^http/, "ws")), {
    headers: { "X-Twilio-Signature": twilioSignature(TEST_TWILIO_AUTH_TOKEN, streamUrl, {}), "CF-Connecting-IP": call.ip },
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    // Twilio does not compress its media stream; ws would offer permessage-deflate, and zlib on every frame was
    // the load generator's largest cost (and workerd's to undo).
    perMessageDeflate: false,
  });
  call.socket = socket;
  socket.on("message", (data) => onPlatformMessage(call, data));
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
    socket.once("close", (code) => reject(new Error(`media socket closed before open: ${code}`)));
  });
  call.setupAt.opened = preciseNow();
  socket.on("error", (error) => (call.failure ??= `media socket: ${error.message}`));
  socket.on("close", (code) => {
    if (call.phase === "streaming") call.failure ??= `media socket closed by platform: ${code}`;
  });
  send(call, JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
  send(
    call,
    JSON.stringify({
      event: "start",
      sequenceNumber: String(++call.sequenceNumber),
      streamSid: call.streamSid,
      start: {
        accountSid: TEST_TWILIO_ACCOUNT_SID,
        streamSid: call.streamSid,
        callSid: call.callSid,
        tracks: ["inbound"],
        customParameters: { token },
        mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
      },
    }),
  );
  call.streamStartedAt = performance.now();
  call.phase = "streaming";
  onStreaming();
}

/** Sends every frame that is due, for every streaming call: one timer for all calls, not one per call. */
export function pumpFrames(calls: CallState[], payloadAt: (call: CallState, index: number) => string): void {
  const now = performance.now();
  for (const call of calls) {
    if (call.phase !== "streaming") continue;
    while (call.nextFrame < call.frameCount && call.streamStartedAt + call.nextFrame * FRAME_MS <= now) {
      const index = call.nextFrame++;
      const message =
        `{"event":"media","sequenceNumber":"${++call.sequenceNumber}","streamSid":"${call.streamSid}",` +
        `"media":{"track":"inbound","chunk":"${index + 1}","timestamp":"${index * FRAME_MS}","payload":"${payloadAt(call, index)}"}}`;
      call.sentAt[index] = preciseNow();
      send(call, message);
    }
    if (call.nextFrame >= call.frameCount) call.phase = "tail";
  }
}

export async function finishCall(platformUrl: string, call: CallState, to: string): Promise<void> {
  send(
    call,
    JSON.stringify({
      event: "stop",
      sequenceNumber: String(++call.sequenceNumber),
      streamSid: call.streamSid,
      stop: { accountSid: TEST_TWILIO_ACCOUNT_SID, callSid: call.callSid },
    }),
  );
  if (call.markTimer) clearTimeout(call.markTimer);
  call.phase = "done";
  call.socket?.close(1000, "stream ended");
  const params = {
    ...callParams(call, to, "completed"),
    SequenceNumber: "0",
    CallbackSource: "call-progress-events",
    CallDuration: String(Math.round((call.frameCount * FRAME_MS) / 1000)),
  };
  const response = await postSigned(platformUrl, publicStatusUrl, call, params).catch(() => null);
  await response?.arrayBuffer().catch(() => undefined);
}

/** A call not yet started: `frameCount` frames to send (pumpFrames sends them, then the call is in its "tail"). */
export function newCall(key: string, ip: string, frameCount: number): CallState {
  return {
    key,
    callSid: twilioSid("CA"),
    streamSid: twilioSid("MZ"),
    ip,
    socket: null,
    streamStartedAt: 0,
    frameCount,
    nextFrame: 0,
    sequenceNumber: 0,
    sentAt: new Float64Array(frameCount),
    agentMediaAt: [],
    agentMediaHeads: [],
    clearsAt: [],
    playingUntil: 0,
    pendingMarks: [],
    markTimer: null,
    phase: "webhook",
    failure: null,
    webhookMs: null,
    setupAt: { webhook: 0, answered: 0, opened: 0 },
    sessionId: null,
  };
}

/** base64 µ-law payload of each 20 ms frame of `samples` (8 kHz PCM16), encoded once. */
export function framePayloads(samples: Int16Array): string[] {
  const frames = Math.floor(samples.length / SAMPLES_PER_FRAME);
  return Array.from({ length: frames }, (_, index) =>
    Buffer.from(encodeG711("PCMU", samples.subarray(index * SAMPLES_PER_FRAME, (index + 1) * SAMPLES_PER_FRAME))).toString("base64"),
  );
}
