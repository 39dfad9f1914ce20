import { exports } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { encodeMulaw } from "../../../durable-objects/media/audio/g711.ts";
import { decodePcm16le } from "../../../durable-objects/media/audio/pcm16.ts";
import type { LiveEvent } from "../../../workers/shared/live-protocol.ts";
import type { ScenarioInput } from "../../simulators/providers/scenarios.ts";
import { decodeSamples, rms } from "../support/audio-signals.ts";
import { closeCodeOf, eventually } from "../support/carriers.ts";
import { api, randomIp, userWithToken } from "../support/identity.ts";
import { captureLogs } from "../support/logs.ts";
import { openStream, type TwilioMediaCaller, transcriptOf, twilioCallWith } from "../support/media-caller.ts";
import { callerSpeech, onlyConnection, putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";
import { connectionsOf, switchTo } from "../support/switching.ts";

/**
 * Supervisors in the loop, end to end: a Twilio call (its media caller) answered by the OpenAI simulator through
 * the real Worker and the call's object, and supervisors' browsers on /live. A whisper reaches the provider as a
 * system item with no response asked for; a takeover clears the caller's playback, bridges the supervisor's audio to
 * the caller and the caller's to the supervisor (tones in, the same tones out), and keeps the agent's replies from
 * the caller; a release gives the agent what the caller said meanwhile. Viewers watch but cannot take part.
 */

const opened: WebSocket[] = [];
afterEach(() => {
  for (const socket of opened.splice(0)) {
    try {
      socket.close(1000, "test done");
    } catch {
      // Already closed.
    }
  }
});

/** A browser on /live whose frames are queued from the start, so none is missed between awaits. */
class Browser {
  readonly events: LiveEvent[] = [];
  readonly audio: Uint8Array[] = [];
  readonly closed: Promise<number>;
  private waiters: Array<() => void> = [];

  constructor(readonly socket: WebSocket) {
    socket.binaryType = "arraybuffer";
    socket.accept();
    opened.push(socket);
    this.closed = closeCodeOf(socket);
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") this.events.push(JSON.parse(event.data) as LiveEvent);
      else this.audio.push(new Uint8Array(event.data as ArrayBuffer));
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async open(sessionId: string, token: string): Promise<Browser> {
    const response = await exports.default.fetch(`https://switchboard.test/api/v1/sessions/${sessionId}/live`, {
      headers: { Upgrade: "websocket", "CF-Connecting-IP": randomIp(), "Sec-WebSocket-Protocol": `switchboard.v1, bearer.${token}` },
    });
    expect(response.status).toBe(101);
    const browser = new Browser(response.webSocket!);
    await browser.next("hello");
    return browser;
  }

  send(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  /** The first event of `type` at or after index `from`. */
  async next<T extends LiveEvent["type"]>(type: T, from = 0): Promise<Extract<LiveEvent, { type: T }>> {
    for (;;) {
      const found = this.events.slice(from).find((event) => event.type === type);
      if (found) return found as Extract<LiveEvent, { type: T }>;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  audioBytes(): number {
    return this.audio.reduce((sum, frame) => sum + frame.byteLength, 0);
  }
}

/** A sine tone as PCM16 samples. */
function tone(hz: number, ms: number, rate: number): Int16Array {
  const samples = new Int16Array((rate * ms) / 1000);
  for (let i = 0; i < samples.length; i++) samples[i] = Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / rate));
  return samples;
}

/** The frequency of a clean tone, from its rising zero crossings (the edges skipped: filters ring there). */
function frequencyOf(samples: Int16Array, rate: number): number {
  const body = samples.subarray(Math.floor(samples.length / 10), Math.floor((samples.length * 9) / 10));
  let crossings = 0;
  for (let i = 1; i < body.length; i++) if (body[i - 1]! < 0 && body[i]! >= 0) crossings++;
  return (crossings * rate) / body.length;
}

function pcm16Samples(frames: Uint8Array[]): Int16Array {
  const bytes = new Uint8Array(frames.reduce((sum, frame) => sum + frame.byteLength, 0));
  let offset = 0;
  for (const frame of frames) {
    bytes.set(frame, offset);
    offset += frame.byteLength;
  }
  const samples = new Int16Array(bytes.length >> 1);
  decodePcm16le(bytes, samples);
  return samples;
}

async function callWithSupervisors(label: string) {
  const key = uniqueKey(label);
  await putScenario(key, { replies: ["Hello, how can I help?", "Happy to help again."], callerTranscripts: ["I want a person please"] });
  const call = await twilioCallWith("openai", key);
  const caller = await openStream(call, 8);
  const supervisor = await Browser.open(call.sessionId, (await userWithToken(call.tenantId, "supervisor")).accessToken);
  const viewer = await Browser.open(call.sessionId, (await userWithToken(call.tenantId, "viewer")).accessToken);
  // The provider's session is ready (its setup answered) before anything is asked of it.
  await eventually(async () => (await onlyConnection(key)).clientMessageCounts["session.update"]);
  return { key, call, caller, supervisor, viewer };
}

/** Messages the provider received, by type, from the simulator's recording. */
async function itemsGiven(key: string): Promise<Array<{ type?: string; role?: string; content?: Array<{ text?: string }> }>> {
  return (await onlyConnection(key)).history.entries as Array<{ type?: string; role?: string; content?: Array<{ text?: string }> }>;
}

const textOf = (item: { content?: Array<{ text?: string }> }) => (item.content ?? []).map((part) => part.text ?? "").join(" ");

/** µ-law frames of a 1 kHz tone, then silence so the provider's turn detection ends the caller's turn. */
async function callerTone(caller: TwilioMediaCaller): Promise<void> {
  const samples = tone(1000, 800, 8000);
  const bytes = new Uint8Array(samples.length);
  encodeMulaw(samples, bytes);
  await caller.speak(bytes);
  await caller.silence(1200);
}

describe("supervisors on /live", () => {
  it("a whisper reaches the agent as guidance: no response is asked for and the caller hears nothing of it", async () => {
    const { key, caller, supervisor, viewer } = await callWithSupervisors("whisper");
    const mediaBefore = caller.count("media");
    const responsesBefore = (await onlyConnection(key)).clientMessageCounts["response.create"] ?? 0;

    supervisor.send({ type: "whisper", text: "Offer the loyalty discount." });
    expect(await viewer.next("whisper")).toMatchObject({ text: "Offer the loyalty discount." });
    const guidance = await eventually(async () =>
      (await itemsGiven(key)).find((item) => item.role === "system" && textOf(item).includes("Offer the loyalty discount.")),
    );
    expect(guidance.type).toBe("message");
    const connection = await onlyConnection(key);
    expect(connection.clientMessageCounts["response.create"] ?? 0).toBe(responsesBefore);
    expect(connection.responses.entries).toHaveLength(0);
    expect(caller.count("media")).toBe(mediaBefore);
  });

  it("a viewer cannot whisper or take over: an error frame, and nothing happens", async () => {
    const { key, caller, supervisor, viewer } = await callWithSupervisors("viewer");
    viewer.send({ type: "takeover" });
    expect(await viewer.next("error")).toMatchObject({ code: "forbidden" });
    const errors = viewer.events.length;
    viewer.send({ type: "whisper", text: "Say something rude." });
    expect(await viewer.next("error", errors)).toMatchObject({ code: "forbidden" });
    // A supervisor's malformed whisper is refused too (bounded text).
    supervisor.send({ type: "whisper", text: "x".repeat(1001) });
    expect(await supervisor.next("error")).toMatchObject({ code: "invalid_message" });
    expect(caller.count("clear")).toBe(0);
    expect(viewer.events.some((event) => event.type === "takeover" || event.type === "whisper")).toBe(false);
    expect((await itemsGiven(key)).some((item) => item.role === "system")).toBe(false);
  });

  it("takeover bridges the supervisor and the caller, keeps the agent from the caller; release hands the agent what was said", async () => {
    const { key, call, caller, supervisor, viewer } = await callWithSupervisors("takeover");
    const clearsBefore = caller.count("clear");

    supervisor.send({ type: "takeover" });
    expect(await viewer.next("takeover")).toMatchObject({ type: "takeover" });
    await caller.until(() => caller.count("clear") > clearsBefore);
    const mediaFrom = caller.received.length;

    // The supervisor's tone (PCM16 16 kHz) arrives at the caller as µ-law 8 kHz, the same tone.
    const spoken = tone(440, 600, 16000);
    for (let offset = 0; offset < spoken.length; offset += 320) {
      const frame = spoken.subarray(offset, offset + 320);
      supervisor.socket.send(new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength).slice());
    }
    const heardBytes = (spoken.length / 2) * 0.9;
    await caller.until(() => caller.received.slice(mediaFrom).reduce((sum, m) => sum + (m.payloadBytes ?? 0), 0) >= heardBytes);
    const heard = decodeSamples(
      caller.received.slice(mediaFrom).flatMap((m) => (m.payload ? [m.payload] : [])),
      { encoding: "pcmu", sampleRate: 8000 },
    );
    expect(rms(heard)).toBeGreaterThan(3000);
    expect(frequencyOf(heard, 8000)).toBeGreaterThan(420);
    expect(frequencyOf(heard, 8000)).toBeLessThan(460);

    // The caller's tone reaches the supervisor as PCM16 16 kHz; the agent answers the turn, unheard.
    await callerTone(caller);
    await eventually(async () => supervisor.audioBytes() >= 800 * 32 * 0.9);
    // The tone's 800 ms, without the silence after it.
    const toSupervisor = pcm16Samples(supervisor.audio).subarray(0, 800 * 16);
    expect(rms(toSupervisor)).toBeGreaterThan(3000);
    expect(frequencyOf(toSupervisor, 16000)).toBeGreaterThan(960);
    expect(frequencyOf(toSupervisor, 16000)).toBeLessThan(1040);
    const connection = await eventually(async () => {
      const snapshot = await onlyConnection(key);
      return snapshot.truncations.entries.length > 0 && snapshot;
    }, 300);
    expect(connection.responses.entries.length).toBeGreaterThan(0);
    expect(connection.truncations.entries.every((truncation) => truncation.audioEndMs === 0)).toBe(true);
    // Everything the caller got since the takeover is the supervisor's tone: no agent audio, no marks.
    const sinceTakeover = caller.received.slice(mediaFrom);
    expect(sinceTakeover.some((message) => message.mark)).toBe(false);
    expect(sinceTakeover.reduce((sum, m) => sum + (m.payloadBytes ?? 0), 0)).toBeLessThanOrEqual(spoken.length / 2);

    // Release: the agent's context gets the caller's words from the takeover.
    await transcriptOf(call.token, call.sessionId, (lines) => lines.some((line) => line.text === "I want a person please"));
    supervisor.send({ type: "release" });
    expect(await viewer.next("release")).toMatchObject({ reason: "released" });
    await eventually(async () =>
      (await itemsGiven(key)).find((item) => item.role === "user" && textOf(item).includes("I want a person please")),
    );
    const lines = await transcriptOf(call.token, call.sessionId, (all) => all.some((line) => line.text === "Supervisor released the call"));
    expect(lines.map((line) => `${line.role}: ${line.text}`)).toEqual(
      expect.arrayContaining(["system: Supervisor took over the call", "caller: I want a person please"]),
    );
  });

  it("one takeover at a time; the holder's socket closing releases it for another supervisor", async () => {
    const { call, supervisor, viewer } = await callWithSupervisors("holder");
    const second = await Browser.open(call.sessionId, (await userWithToken(call.tenantId, "admin")).accessToken);
    supervisor.send({ type: "takeover" });
    await second.next("takeover");
    second.send({ type: "takeover" });
    expect(await second.next("error")).toMatchObject({ code: "takeover_held" });
    const errors = second.events.length;
    second.send({ type: "release" });
    expect(await second.next("error", errors)).toMatchObject({ code: "not_taken_over" });

    supervisor.socket.close(1000, "gone");
    expect(await viewer.next("release")).toMatchObject({ reason: "supervisor_left" });
    const from = second.events.length;
    second.send({ type: "takeover" });
    expect(await second.next("takeover", from)).toMatchObject({ type: "takeover" });
  });

  it("a provider switch during a takeover keeps it, and the new provider gets the whispers with its instructions", async () => {
    const { key, call, caller, supervisor, viewer } = await callWithSupervisors("switch");
    supervisor.send({ type: "whisper", text: "The caller is a VIP." });
    await viewer.next("whisper");
    supervisor.send({ type: "takeover" });
    await viewer.next("takeover");
    const mediaFrom = caller.received.length;

    const switched = await switchTo(call.token, call.sessionId, { provider: "gemini", immediate: true });
    expect(switched.status).toBe(200);
    const [gemini] = await connectionsOf(key, "gemini");
    expect(JSON.stringify(gemini!.setup)).toContain("The caller is a VIP.");

    // The new provider answers the caller's turn; none of it reaches the caller, while the supervisor still hears them.
    await callerTone(caller);
    await eventually(async () => (await connectionsOf(key, "gemini"))[0]!.responses.entries.length > 0, 300);
    expect(supervisor.audioBytes()).toBeGreaterThan(0);
    expect(caller.received.slice(mediaFrom).some((message) => message.event === "media" || message.mark)).toBe(false);
    expect(viewer.events.some((event) => event.type === "release")).toBe(false);
  });

  it("a supervisor demoted to viewer is disconnected (4403) at the next recheck, and their takeover ends", async () => {
    const { call, supervisor, viewer } = await callWithSupervisors("demoted");
    const admin = await userWithToken(call.tenantId, "admin");
    const holder = await userWithToken(call.tenantId, "supervisor");
    const demoted = await Browser.open(call.sessionId, holder.accessToken);
    demoted.send({ type: "takeover" });
    await viewer.next("takeover");
    const changed = await api(`/api/v1/users/${holder.id}`, { method: "PATCH", token: admin.accessToken, body: { role: "viewer" } });
    expect(changed.status).toBe(200);
    expect(await demoted.closed).toBe(4403);
    expect(await viewer.next("release")).toMatchObject({ reason: "supervisor_left", by: holder.id });
    // The one who kept the role keeps the socket.
    expect(supervisor.socket.readyState).toBe(WebSocket.OPEN);
  });
});

/**
 * The supervisor's own words during a takeover, transcribed by a speech-to-text stream of the takeover's (OpenAI's
 * transcription session on the simulator, keyed `<key>:supervisor-stt`, scripted with `callerTranscripts`).
 */
describe("the supervisor's words in the transcript", () => {
  const SAID = "I can refund the card 4111 1111 1111 1111 today";
  const MASKED = "I can refund the card [card ending 1111] today";

  /** A call of a tenant that masks PII, with the supervisor's stream scripted (or refused) under its own key. */
  async function takenOver(label: string, stt: ScenarioInput) {
    const key = uniqueKey(label);
    await putScenario(key, { replies: ["Hello, how can I help?"], callerTranscripts: ["I want a person please"] });
    await putScenario(`${key}:supervisor-stt`, stt);
    const call = await twilioCallWith("openai", key, undefined, { piiRedaction: "mask" });
    const caller = await openStream(call, 8);
    const supervisor = await Browser.open(call.sessionId, (await userWithToken(call.tenantId, "supervisor")).accessToken);
    const viewer = await Browser.open(call.sessionId, (await userWithToken(call.tenantId, "viewer")).accessToken);
    await eventually(async () => (await onlyConnection(key)).clientMessageCounts["session.update"]);
    supervisor.send({ type: "takeover" });
    await viewer.next("takeover");
    return { key, call, caller, supervisor, viewer };
  }

  /**
   * Real speech from the supervisor's microphone (PCM16 16 kHz, 60 ms frames, under the /live frame rate), with the
   * recording's second of silence after it, or cut off (`trailingSilence: false`) so no turn detection hears it end.
   */
  async function supervisorSpeaks(supervisor: Browser, trailingSilence = true): Promise<number> {
    const recorded = await callerSpeech("hello", "pcm16", 16000);
    const speech = trailingSilence ? recorded : recorded.subarray(0, recorded.length - 32_000);
    for (let offset = 0; offset < speech.length; offset += 1920) supervisor.socket.send(speech.slice(offset, offset + 1920));
    return speech.length;
  }

  it("become `supervisor` lines, masked, on /live, and in the agent's context after the release", async () => {
    const logs = captureLogs();
    const { key, call, supervisor, viewer } = await takenOver("supervisor-stt", { callerTranscripts: [SAID] });
    await supervisorSpeaks(supervisor);

    const lines = await transcriptOf(call.token, call.sessionId, (all) => all.some((line) => line.role === "supervisor"));
    expect(lines.filter((line) => line.role === "supervisor").map((line) => line.text)).toEqual([MASKED]);
    expect(JSON.stringify(lines)).not.toContain("4111 1111");
    const supervisorEvents = () => viewer.events.filter((event) => event.type === "transcript" && event.role === "supervisor");
    await eventually(async () => supervisorEvents().length > 0);
    expect(supervisorEvents()).toEqual([expect.objectContaining({ text: MASKED })]);

    // The stream is a transcription session of its own: no model, no audio answers.
    const stt = await onlyConnection(`${key}:supervisor-stt`);
    expect(stt.query).toMatchObject({ intent: "transcription" });
    expect(stt.setup).toMatchObject({ type: "session.update", session: { type: "transcription" } });
    expect(stt.responses.entries).toHaveLength(0);

    supervisor.send({ type: "release" });
    await viewer.next("release");
    const given = await eventually(async () => (await itemsGiven(key)).find((item) => textOf(item).includes(MASKED)));
    expect(given.role).toBe("assistant");
    expect(JSON.stringify(logs.all())).not.toContain("refund the card");
  });

  it("words still unfinished at the release are committed, and reach the transcript and the agent's context after it", async () => {
    const { key, call, supervisor, viewer } = await takenOver("supervisor-stt-late", {
      callerTranscripts: ["One moment, I will hand you back"],
    });
    await supervisorSpeaks(supervisor, false);
    // The stream has had the audio (it cannot have ended the utterance: no silence followed) before the release.
    await eventually(
      async () => ((await onlyConnection(`${key}:supervisor-stt`)).clientMessageCounts["input_audio_buffer.append"] ?? 0) >= 10,
    );
    supervisor.send({ type: "release" });
    await viewer.next("release");

    const lines = await transcriptOf(call.token, call.sessionId, (all) => all.some((line) => line.role === "supervisor"));
    expect(lines.filter((line) => line.role === "supervisor").map((line) => line.text)).toEqual(["One moment, I will hand you back"]);
    expect((await onlyConnection(`${key}:supervisor-stt`)).clientMessageCounts["input_audio_buffer.commit"]).toBe(1);
    await eventually(async () => (await itemsGiven(key)).find((item) => textOf(item).includes("One moment, I will hand you back")));
  });

  it("a refused stream never touches the takeover: the caller still hears the supervisor, and the line says it was not transcribed", async () => {
    const logs = captureLogs();
    const { key, call, caller, supervisor, viewer } = await takenOver("supervisor-stt-refused", { refuseUpgrade: 503 });
    const mediaFrom = caller.received.length;
    const sent = await supervisorSpeaks(supervisor);

    // µ-law 8 kHz: a byte per two bytes the supervisor sent, less what the resampler still holds.
    await caller.until(() => caller.received.slice(mediaFrom).reduce((sum, m) => sum + (m.payloadBytes ?? 0), 0) >= (sent / 4) * 0.9);
    await logs.until(call.sessionId, (line) => line.event === "supervision.stt_failed");
    supervisor.send({ type: "release" });
    expect(await viewer.next("release")).toMatchObject({ reason: "released" });
    const lines = await transcriptOf(call.token, call.sessionId, (all) => all.some((line) => line.role === "supervisor"));
    expect(lines.filter((line) => line.role === "supervisor").map((line) => line.text)).toEqual([
      expect.stringMatching(/^\[\d+ s of the supervisor's audio, not transcribed\]$/),
    ]);
    expect((await simulatorConnections(`${key}:supervisor-stt`))[0]?.refusedWithStatus).toBe(503);
    expect(logs.of(call.sessionId).filter((line) => line.event === "supervision.stt_failed")).toHaveLength(1);
  });
});
