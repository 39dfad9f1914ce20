import { describe, expect, it } from "vitest";
import type { AudioFormat } from "../../../../durable-objects/media/audio/audio-format.ts";
import { encodeBase64 } from "../../../../durable-objects/media/audio/pcm16.ts";
import { connectLocalEngine } from "../../../../durable-objects/voice/providers/local/engine.ts";
import type { ProviderEvent, ProviderSessionConfig, VoiceProvider } from "../../../../durable-objects/voice/providers/provider.ts";
import { ACCEPTS_IMAGES } from "../../../../durable-objects/voice/providers/registry.ts";
import { createLogger } from "../../../../workers/shared/logger.ts";
import { bytesPerMs, concatBytes as concat, decodeSamples, framesOf, rms, silence } from "../../support/audio-signals.ts";
import type { Utterance } from "../../support/provider-simulator.ts";
import { ProviderEventLog, callerSpeech as recordedSpeech } from "../../support/provider-simulator.ts";

/**
 * The `local` provider in workerd, driven with real recorded speech (served by the provider simulator's control
 * API; the engine itself uses no network). It runs on audio time, so pushing audio faster than real time is
 * exactly equivalent to a live call, and no test sleeps.
 */

const PCMU: AudioFormat = { encoding: "pcmu", sampleRate: 8000 };
const END_CALL = { name: "end_call", description: "Ends the call.", parameters: { type: "object", properties: {} } };

function sessionConfig(overrides: Partial<ProviderSessionConfig> = {}): ProviderSessionConfig {
  return {
    instructions: "You are Priya's bakery assistant. Take orders politely.",
    tools: [END_CALL],
    history: [],
    callAudio: PCMU,
    correlationId: `local-${crypto.randomUUID()}`,
    log: createLogger({ correlationId: "local-engine-test" }),
    ...overrides,
  };
}

/** `react` runs inside the engine's event handler, as a call object's reaction would. */
async function engine(config = sessionConfig(), react: (event: ProviderEvent) => void = () => {}) {
  const log = new ProviderEventLog();
  const onEvent = (event: ProviderEvent) => {
    react(event);
    log.onEvent(event);
  };
  return { provider: await connectLocalEngine({ onEvent }, config), log };
}

const callerSpeech = (name: Utterance, format: AudioFormat) => recordedSpeech(name, format.encoding, format.sampleRate);

function send(provider: VoiceProvider, audio: Uint8Array, frameMs = 20): void {
  for (const frame of framesOf(audio, provider.inputFormat, frameMs)) provider.sendAudio(frame);
}

const audioOf = (events: ProviderEvent[], itemId?: string) =>
  events.flatMap((event) => (event.type === "agent_audio" && (!itemId || event.itemId === itemId) ? [event.base64] : []));

describe("local voice engine", () => {
  it("takes no images (it has no vision), as the registry says", async () => {
    const { provider } = await engine();
    expect(provider.sendImage).toBeUndefined();
    expect(ACCEPTS_IMAGES.local).toBe(false);
    provider.close();
  });

  it("answers one caller turn with transcripts and an audible reply in the call's format", async () => {
    const { provider, log } = await engine();
    expect(provider.name).toBe("local");
    expect(provider.inputFormat).toEqual(PCMU);
    expect(provider.outputFormat).toEqual(PCMU);
    send(provider, concat(await callerSpeech("hello", PCMU), silence(PCMU, 3000)));

    const transcripts = log.ofType("transcript");
    expect(transcripts.map(({ role, text }) => [role, text])).toEqual([
      ["caller", "(caller turn 1)"],
      ["agent", "Hello, this is the local test voice. My instructions begin: You are Priya's bakery assistant."],
    ]);
    const [done, ...moreDone] = log.ofType("agent_audio_done");
    expect(moreDone).toEqual([]);
    expect(done?.itemId).toBe(transcripts[1]?.itemId);
    expect(log.events.at(-1)).toEqual(done);
    expect(log.ofType("caller_speech_started")).toEqual([]);
    // ~60 ms of speech per character, in 100 ms chunks of µ-law, clearly not silence.
    const samples = decodeSamples(audioOf(log.events, done?.itemId), PCMU);
    const expectedMs = Array.from(transcripts[1]?.text ?? "").length * 60;
    expect(samples.length).toBe(expectedMs * 8);
    expect(audioOf(log.events)).toHaveLength(Math.ceil(expectedMs / 100));
    expect(rms(samples)).toBeGreaterThan(1000);
  });

  it.each([
    { encoding: "pcma", sampleRate: 8000 },
    { encoding: "pcm16", sampleRate: 16000 },
  ] as const)("works in %o both ways", async (callAudio) => {
    const { provider, log } = await engine(sessionConfig({ callAudio }));
    expect(provider.outputFormat).toEqual(callAudio);
    send(provider, concat(await callerSpeech("goodbye", callAudio), silence(callAudio, 3000)));
    const [done] = log.ofType("agent_audio_done");
    const chunks = audioOf(log.events, done?.itemId);
    expect(chunks[0]?.length).toBe(Math.ceil((bytesPerMs(callAudio) * 100) / 3) * 4);
    expect(rms(decodeSamples(chunks, callAudio))).toBeGreaterThan(1000);
  });

  it("is deterministic: the same audio gives the same events and bytes at the same audio positions, however framed", async () => {
    // The second utterance starts after the first reply has finished playing: two full turns, no barge-in.
    const audio = concat(await callerSpeech("hello", PCMU), silence(PCMU, 6000), await callerSpeech("payment", PCMU), silence(PCMU, 3000));
    /** Each event with the caller audio (bytes) received when it was emitted. */
    async function run(frameMs: number): Promise<Array<[number, ProviderEvent]>> {
      const timeline: Array<[number, ProviderEvent]> = [];
      let received = 0;
      const { provider } = await engine(sessionConfig(), (event) => timeline.push([received, event]));
      for (const frame of framesOf(audio, PCMU, frameMs)) {
        received += atob(frame).length;
        provider.sendAudio(frame);
      }
      return timeline;
    }
    const first = await run(20);
    expect(first.filter(([, event]) => event.type === "agent_audio_done")).toHaveLength(2);
    expect(first.filter(([, event]) => event.type === "caller_speech_started")).toEqual([]);
    expect(await run(20)).toEqual(first);
    // Carrier frames of 10 ms: every analysis frame completes at the same byte as with 20 ms frames.
    expect(await run(10)).toEqual(first);
  });

  it("stops its reply when the caller talks over it, and answers the new turn", async () => {
    const { provider, log } = await engine();
    // No interrupt() from the test: the engine stops by itself, as the real services do.
    send(provider, await callerSpeech("hello", PCMU)); // ends with 1 s of silence: the reply has just begun
    const firstItem = log.ofType("agent_audio")[0]?.itemId;
    expect(firstItem).toBeDefined();
    send(provider, concat(await callerSpeech("interrupt", PCMU), silence(PCMU, 3000)));

    expect(log.ofType("caller_speech_started")).toHaveLength(1);
    const bargeInAt = log.events.findIndex((event) => event.type === "caller_speech_started");
    expect(log.events.slice(bargeInAt).some((event) => "itemId" in event && event.itemId === firstItem)).toBe(false);
    const fullReplyChunks = Math.ceil((Array.from(log.ofType("transcript")[1]?.text ?? "").length * 60) / 100);
    expect(audioOf(log.events, firstItem).length).toBeLessThan(fullReplyChunks);
    expect(log.ofType("agent_audio_done").map((event) => event.itemId)).toEqual(["local-reply-2"]);
    expect(
      log
        .ofType("transcript")
        .filter((event) => event.role === "caller")
        .map((event) => event.text),
    ).toEqual(["(caller turn 1)", "(caller turn 2)"]);
  });

  it("interrupt drops the rest of the named item at once", async () => {
    const { provider, log } = await engine(sessionConfig(), (event) => {
      if (event.type === "agent_audio") provider.interrupt(event.itemId, 0);
    });
    send(provider, concat(await callerSpeech("hello", PCMU), silence(PCMU, 3000)));
    expect(audioOf(log.events)).toHaveLength(1);
    expect(log.ofType("agent_audio_done")).toEqual([]);
  });

  it("asks for end_call on '#' or 'end call' when the tool is configured, and not otherwise", async () => {
    const { provider, log } = await engine();
    provider.sendText("#");
    provider.sendText(" End Call ");
    expect(log.events).toEqual([
      { type: "tool_call", callId: "local-call-1", name: "end_call", arguments: "{}" },
      { type: "tool_call", callId: "local-call-2", name: "end_call", arguments: "{}" },
    ]);

    const withoutTool = await engine(sessionConfig({ tools: [] }));
    withoutTool.provider.sendText("#");
    expect(withoutTool.log.events).toEqual([]);
  });

  it("answers typed text as a caller turn of its own", async () => {
    const { provider, log } = await engine();
    provider.sendText("  I would like a cake  ");
    expect(log.ofType("transcript")[0]).toEqual({ type: "transcript", role: "caller", text: "I would like a cake" });
    expect(log.ofType("agent_audio")).toHaveLength(1); // the rest follows as caller audio time passes
    send(provider, silence(PCMU, 2000));
    expect(log.ofType("agent_audio_done")).toHaveLength(1);
  });

  it("stays quiet for silence, a click, line noise and malformed frames", async () => {
    const { provider, log } = await engine();
    send(provider, silence(PCMU, 5000));
    // A 40 ms click: loud, but shorter than the 60 ms a turn needs to start.
    const click = new Uint8Array(320).fill(0x80); // µ-law 0x80 is the loudest positive code
    send(provider, concat(click, silence(PCMU, 2000)));
    // Noise at ±212 (about −44 dBFS), below the −40 dBFS speech threshold.
    const noise = new Uint8Array(8000).map((_, i) => (i % 2 === 0 ? 0xea : 0x6a));
    send(provider, concat(noise, silence(PCMU, 2000)));
    expect(log.events).toEqual([]);

    provider.sendAudio("not base64!");
    provider.sendAudio(encodeBase64(new Uint8Array(64 * 1024)));
    provider.sendAudio("@@@@");
    expect(log.ofType("error").map((event) => event.message)).toEqual([
      "audio frame is not base64 (1 so far)",
      "audio frame too large (2 so far)",
    ]);
    provider.close();
    send(provider, concat(await callerSpeech("hello", PCMU), silence(PCMU, 3000)));
    provider.sendText("#");
    expect(log.ofType("transcript")).toEqual([]);
  });
});
