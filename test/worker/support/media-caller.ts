import { env } from "cloudflare:workers";
import { afterEach, expect } from "vitest";
import { encodeBase64 } from "../../../durable-objects/media/audio/pcm16.ts";
import { callDetail, tenantWithNumbers, twilioStatus } from "./calls.ts";
import { openTwilioMedia, parseStreamTwiml, postTwilio, randomCallSid, twilioCallParams, twilioStart } from "./carriers.ts";
import { api } from "./identity.ts";
import { callerSpeech, type Utterance } from "./provider-simulator.ts";

/**
 * Twilio's side of a media stream, inside workerd, for end-to-end call tests: it streams caller audio (recorded
 * speech as µ-law frames), plays the agent's audio on a real-time clock the way Twilio does, echoes each mark when
 * the audio before it has played, and honours `clear` (pending marks echoed at once, playback emptied).
 */
export interface OutboundMessage {
  event: string;
  at: number;
  payloadBytes?: number;
  /** A media frame's audio, base64 as the platform sent it. */
  payload?: string;
  mark?: string;
}

const FRAME_BYTES = 160; // 20 ms of µ-law

export class TwilioMediaCaller {
  readonly received: OutboundMessage[] = [];
  readonly echoedMarks: string[] = [];
  /** For each `clear` received, how many marks had been echoed before it (what the platform knew was heard). */
  readonly clearsAfterMarks: number[] = [];
  closeCode: number | null = null;
  private playingUntil = 0;
  private readonly pendingMarks: Array<{ name: string; at: number; timer: ReturnType<typeof setTimeout> }> = [];
  private sequence = 1;
  private chunk = 0;
  private readonly waiters: Array<{ test: () => boolean; resolve: () => void }> = [];

  private constructor(
    readonly socket: WebSocket,
    readonly streamSid: string,
    /** Playback speed: agent audio "plays" this many times faster than real time (marks come back sooner). */
    private readonly playbackSpeed: number,
  ) {
    socket.addEventListener("message", (event) => this.onMessage(String(event.data)));
    socket.addEventListener("close", (event) => {
      this.closeCode = event.code;
      this.wake();
    });
  }

  static async open(streamUrl: string, callSid: string, token: string, playbackSpeed = 1): Promise<TwilioMediaCaller> {
    const response = await openTwilioMedia(streamUrl);
    expect(response.status).toBe(101);
    const socket = response.webSocket!;
    socket.accept();
    const streamSid = `MZ${crypto.randomUUID().replace(/-/g, "")}`;
    const caller = new TwilioMediaCaller(socket, streamSid, playbackSpeed);
    socket.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
    socket.send(twilioStart(callSid, token, streamSid));
    return caller;
  }

  /** Streams µ-law audio as 20 ms frames, `framesPerTick` frames every `tickMs` (5× real time by default). */
  async speak(bytes: Uint8Array, options: { framesPerTick?: number; tickMs?: number } = {}): Promise<void> {
    const framesPerTick = options.framesPerTick ?? 5;
    for (let offset = 0, frames = 0; offset < bytes.length && this.closeCode === null; offset += FRAME_BYTES) {
      this.sendMedia(bytes.subarray(offset, offset + FRAME_BYTES));
      if (++frames % framesPerTick === 0) await new Promise((resolve) => setTimeout(resolve, options.tickMs ?? 20));
    }
  }

  async say(utterance: Utterance, options?: { framesPerTick?: number; tickMs?: number }): Promise<void> {
    await this.speak(await callerSpeech(utterance, "pcmu", 8000), options);
  }

  /** µ-law silence (0xFF), as a phone line carries between words. */
  async silence(ms: number): Promise<void> {
    await this.speak(new Uint8Array((ms / 20) * FRAME_BYTES).fill(0xff));
  }

  sendMedia(frame: Uint8Array): void {
    this.chunk++;
    this.send({
      event: "media",
      sequenceNumber: String(++this.sequence),
      streamSid: this.streamSid,
      media: { track: "inbound", chunk: String(this.chunk), timestamp: String(this.chunk * 20), payload: encodeBase64(frame) },
    });
  }

  dtmf(digit: string): void {
    this.send({
      event: "dtmf",
      sequenceNumber: String(++this.sequence),
      streamSid: this.streamSid,
      dtmf: { track: "inbound_track", digit },
    });
  }

  stop(): void {
    this.send({
      event: "stop",
      sequenceNumber: String(++this.sequence),
      streamSid: this.streamSid,
      stop: { accountSid: env.TWILIO_ACCOUNT_SID, callSid: "" },
    });
  }

  close(): void {
    for (const mark of this.pendingMarks.splice(0)) clearTimeout(mark.timer);
    try {
      this.socket.close(1000, "test done");
    } catch {
      // already closed
    }
  }

  /** Media frames sent so far. */
  get framesSent(): number {
    return this.chunk;
  }

  count(event: string): number {
    return this.received.filter((message) => message.event === event).length;
  }

  agentAudioBytes(): number {
    return this.received.reduce((sum, message) => sum + (message.payloadBytes ?? 0), 0);
  }

  /** Resolves once `test` holds (checked on every message); the test's timeout bounds the wait. */
  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  /** Any text or binary frame, as a broken or hostile carrier might send it. */
  sendRaw(data: string | ArrayBuffer): void {
    if (this.closeCode === null) this.socket.send(data);
  }

  /** A media frame whose payload is whatever string the test gives (not necessarily base64). */
  sendMediaPayload(payload: string): void {
    this.chunk++;
    this.send({
      event: "media",
      sequenceNumber: String(++this.sequence),
      streamSid: this.streamSid,
      media: { track: "inbound", chunk: String(this.chunk), timestamp: String(this.chunk * 20), payload },
    });
  }

  /** A mark echo the platform never asked for. */
  echoUnknownMark(name: string): void {
    this.send({ event: "mark", sequenceNumber: String(++this.sequence), streamSid: this.streamSid, mark: { name } });
  }

  /** Largest `ms` of the marks named `${itemId}@${ms}` echoed before the `index`-th clear (0-based). */
  heardBeforeClear(itemId: string, index = 0): number {
    const before = this.echoedMarks.slice(0, this.clearsAfterMarks[index] ?? this.echoedMarks.length);
    return Math.max(0, ...before.filter((name) => name.startsWith(`${itemId}@`)).map((name) => Number(name.slice(itemId.length + 1))));
  }

  /** Item ids named by the marks the platform sent, in order of first appearance. */
  markedItems(): string[] {
    const ids = this.received.filter((m) => m.mark).map((m) => m.mark!.slice(0, m.mark!.lastIndexOf("@")));
    return [...new Set(ids)];
  }

  private send(message: unknown): void {
    // The platform may have closed the stream (the call ended) before its close event reached us.
    if (this.closeCode === null && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  private onMessage(text: string): void {
    const message = JSON.parse(text) as { event: string; media?: { payload: string }; mark?: { name: string } };
    const now = Date.now();
    const entry: OutboundMessage = { event: message.event, at: now };
    if (message.event === "media" && message.media) {
      const bytes = atob(message.media.payload).length;
      entry.payloadBytes = bytes;
      entry.payload = message.media.payload;
      this.playingUntil = Math.max(this.playingUntil, now) + bytes / 8 / this.playbackSpeed;
    } else if (message.event === "mark" && message.mark) {
      entry.mark = message.mark.name;
      const name = message.mark.name;
      const due = Math.max(0, this.playingUntil - now);
      const pending = { name, at: this.playingUntil, timer: setTimeout(() => this.echoMark(pending), due) };
      this.pendingMarks.push(pending);
    } else if (message.event === "clear") {
      this.clearsAfterMarks.push(this.echoedMarks.length);
      this.playingUntil = now;
      for (const pending of this.pendingMarks.splice(0)) {
        clearTimeout(pending.timer);
        this.echo(pending.name);
      }
    }
    this.received.push(entry);
    this.wake();
  }

  private echoMark(pending: { name: string }): void {
    const index = this.pendingMarks.indexOf(pending as (typeof this.pendingMarks)[number]);
    if (index >= 0) this.pendingMarks.splice(index, 1);
    this.echo(pending.name);
  }

  private echo(name: string): void {
    this.echoedMarks.push(name);
    this.send({ event: "mark", sequenceNumber: String(++this.sequence), streamSid: this.streamSid, mark: { name } });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.test() || this.closeCode !== null) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }
}

/** A tenant's Twilio number answered by `provider`, and an inbound call to it whose correlation id is `key`. */
export async function twilioCallWith(
  provider: "openai" | "gemini" | "deepgram" | "local",
  key: string,
  instructions = "You are the test line's assistant.",
  /** Tenant settings set (PATCH /api/v1/tenant/settings) before the call comes in. */
  tenantSettings?: Record<string, unknown>,
) {
  const { token, numbers, tenantId } = await tenantWithNumbers([{ carrier: "twilio", provider, instructions }]);
  if (tenantSettings) expect((await api("/api/v1/tenant/settings", { method: "PATCH", token, body: tenantSettings })).status).toBe(200);
  const number = numbers[0]!;
  // The voice webhook with a chosen correlation id: the call's provider connections carry it, keying the simulator's scenario.
  const callSid = randomCallSid();
  const response = await postTwilio("/telephony/twilio/voice", twilioCallParams(callSid, number, "ringing"), {
    headers: { "X-Correlation-ID": key },
  });
  expect(response.status).toBe(200);
  const stream = parseStreamTwiml(await response.text());
  return { token, tenantId, number, callSid, sessionId: stream.url.split("/").at(-1)!, streamUrl: stream.url, mediaToken: stream.token };
}

/**
 * An outbound call placed through POST /api/v1/calls (so the fake Twilio API knows it and accepts updates such as a
 * transfer's redirect), answered, with the stream Twilio would open once the `Url` webhook answered. Its provider
 * connections carry correlation id `key`.
 */
export async function twilioOutboundCallWith(
  provider: "openai" | "gemini" | "deepgram" | "local",
  key: string,
  instructions = "You are the test line's assistant.",
  /** The tenant's settings (PATCH /api/v1/tenant/settings) before the call is placed: the call learns them as it starts. */
  tenantSettings?: Record<string, unknown>,
) {
  const { token, numbers, tenantId } = await tenantWithNumbers([{ carrier: "twilio", provider, instructions }]);
  if (tenantSettings) expect((await api("/api/v1/tenant/settings", { method: "PATCH", token, body: tenantSettings })).status).toBe(200);
  const from = numbers[0]!;
  const to = `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
  const placed = await api("/api/v1/calls", {
    method: "POST",
    token,
    body: { to, carrier: "twilio", provider },
    headers: { "X-Correlation-ID": key },
  });
  expect(placed.status).toBe(201);
  const { id, sessionId } = (await placed.json()) as { id: string; sessionId: string };
  const callSid = (await callDetail(token, id)).carrierCallId!;
  expect(
    (await twilioStatus(callSid, to, "in-progress", { sequence: 2, sessionId, extra: { From: from, Direction: "outbound-api" } })).status,
  ).toBe(204);
  const params = twilioCallParams(callSid, to, "in-progress", { From: from, Direction: "outbound-api" });
  const response = await postTwilio(`/telephony/twilio/voice?sessionId=${sessionId}`, params);
  expect(response.status).toBe(200);
  const stream = parseStreamTwiml(await response.text());
  return { token, tenantId, number: from, to, callId: id, callSid, sessionId, streamUrl: stream.url, mediaToken: stream.token };
}

const openStreams: TwilioMediaCaller[] = [];
afterEach(() => {
  for (const caller of openStreams.splice(0)) caller.close();
});

/** Twilio's side of a call's stream, opened now and closed after the test. */
export async function openStream(
  call: { streamUrl: string; callSid: string; mediaToken: string },
  playbackSpeed = 4,
): Promise<TwilioMediaCaller> {
  const caller = await TwilioMediaCaller.open(call.streamUrl, call.callSid, call.mediaToken, playbackSpeed);
  openStreams.push(caller);
  return caller;
}

export interface TranscriptLine {
  seq: number;
  role: string;
  text: string;
  provider: string;
  interrupted: boolean;
}

/** The session's transcript from the public API once `ready` says so (lines reach D1 in batches). */
export async function transcriptOf(
  token: string,
  sessionId: string,
  ready: (lines: TranscriptLine[]) => boolean,
  attempts = 150,
): Promise<TranscriptLine[]> {
  let last: TranscriptLine[] = [];
  for (let attempt = 0; attempt < attempts; attempt++) {
    const response = await api(`/api/v1/sessions/${sessionId}`, { token });
    if (response.status === 200) {
      last = ((await response.json()) as { transcript: TranscriptLine[] }).transcript;
      if (ready(last)) return last;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`transcript never became ready: ${JSON.stringify(last)}`);
}
