import { env } from "cloudflare:workers";
import { describe, expect, it, onTestFinished } from "vitest";
import { encodeBase64 } from "../../../../durable-objects/media/audio/pcm16.ts";
import type { GeminiLiveOptions, GeminiLiveProvider } from "../../../../durable-objects/voice/providers/gemini/live.ts";
import { connectGeminiLive, DEFAULT_GEMINI_MODEL } from "../../../../durable-objects/voice/providers/gemini/live.ts";
import type { ConversationItem, ProviderSessionConfig } from "../../../../durable-objects/voice/providers/provider.ts";
import {
  CONNECT_TIMEOUT_MS,
  ProviderRefusedError,
  ProviderSetupError,
} from "../../../../durable-objects/voice/providers/provider-socket.ts";
import { ACCEPTS_IMAGES } from "../../../../durable-objects/voice/providers/registry.ts";
import { createLogger } from "../../../../workers/shared/logger.ts";
import type { ConnectionSnapshot } from "../../../simulators/providers/recorder.ts";
import { eventually } from "../../support/carriers.ts";
import type { Utterance } from "../../support/provider-simulator.ts";
import {
  base64Bytes,
  base64Frames,
  callerSpeech,
  ProviderEventLog,
  putScenario,
  simulatorConnections,
  uniqueKey,
} from "../../support/provider-simulator.ts";

/**
 * The Gemini Live adapter against the simulated service (test/simulators/providers/gemini-live.ts) over real
 * sockets, driven with recorded caller speech: what the adapter sends is checked in the simulator's record of the
 * connection, what it reports in the events it hands the call.
 */

const LONG_REPLY =
  "Your balance is one hundred and twenty dollars, and your last payment of forty dollars arrived on Monday, " +
  "so nothing is overdue and the next statement will be issued at the end of the month.";
const BALANCE_TOOL = {
  name: "lookup_balance",
  description: "The caller's account balance",
  parameters: { type: "object", properties: { account: { type: "string" } }, required: ["account"] },
};
/** 16 kHz PCM16: 32 bytes per ms, 640 per 20 ms frame. */
const INPUT_BYTES_PER_MS = 32;
/** 24 kHz PCM16. */
const OUTPUT_BYTES_PER_MS = 48;
/** Silence the simulator's audio endpoint appends to each utterance. */
const TRAILING_SILENCE_MS = 1000;

const newKey = () => uniqueKey("gemini-adapter");

function sessionConfig(key: string, overrides: Partial<ProviderSessionConfig> = {}): ProviderSessionConfig {
  return {
    instructions: "You are a helpful bank assistant.",
    tools: [BALANCE_TOOL],
    history: [],
    callAudio: { encoding: "pcmu", sampleRate: 8000 },
    correlationId: key,
    log: createLogger({ correlationId: key }),
    ...overrides,
  };
}

function dial(
  key: string,
  log: ProviderEventLog,
  overrides: Partial<ProviderSessionConfig> = {},
  options: Partial<GeminiLiveOptions> = {},
) {
  const connectOptions = { url: env.GEMINI_LIVE_URL, apiKey: env.GEMINI_API_KEY, onEvent: log.onEvent, ...options };
  return connectGeminiLive(connectOptions, sessionConfig(key, overrides));
}

async function connect(
  key: string,
  overrides: Partial<ProviderSessionConfig> = {},
  options: Partial<GeminiLiveOptions> = {},
): Promise<{ provider: GeminiLiveProvider; log: ProviderEventLog }> {
  const log = new ProviderEventLog();
  const provider = await dial(key, log, overrides, options);
  onTestFinished(() => provider.close());
  return { provider, log };
}

/** Sends a recorded utterance as the call does (20 ms frames of 16 kHz PCM16); returns what was sent. */
async function speak(provider: GeminiLiveProvider, name: Utterance): Promise<{ frames: number; speechMs: number }> {
  const bytes = await callerSpeech(name, "pcm16", 16000);
  const frames = base64Frames(bytes, 20 * INPUT_BYTES_PER_MS);
  for (const frame of frames) provider.sendAudio(frame);
  return { frames: frames.length, speechMs: bytes.length / INPUT_BYTES_PER_MS - TRAILING_SILENCE_MS };
}

/** The close the simulator recorded for the key's first connection (it lands just after ours is sent). */
async function recordedClose(key: string): Promise<ConnectionSnapshot["close"]> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const [connection] = await simulatorConnections(key);
    if (connection?.close) return connection.close;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return null;
}

const audioBytes = (events: Array<{ base64: string }>) => events.reduce((total, event) => total + base64Bytes(event.base64), 0);

/** A few bytes that start as `mimeType` does, base64, with their SHA-256 (hex): a frame of a caller's screen. */
async function screenImage(mimeType: "image/jpeg" | "image/png", fill: number): Promise<{ base64: string; sha256: string }> {
  const bytes = new Uint8Array(512).fill(fill);
  bytes.set(mimeType === "image/png" ? [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] : [0xff, 0xd8, 0xff, 0xe0]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return { base64: encodeBase64(bytes), sha256: [...digest].map((byte) => byte.toString(16).padStart(2, "0")).join("") };
}

describe("Gemini Live adapter", () => {
  it("sends screen images on the video stream as they are, and the registry says Gemini sees", async () => {
    expect(ACCEPTS_IMAGES.gemini).toBe(true);
    const key = newKey();
    const { provider, log } = await connect(key);
    const [png, jpeg] = [await screenImage("image/png", 1), await screenImage("image/jpeg", 2)];
    provider.sendImage?.({ mimeType: "image/png", base64: png.base64 });
    provider.sendImage?.({ mimeType: "image/jpeg", base64: jpeg.base64 });
    const connection = await eventually(async () => {
      const [recorded] = await simulatorConnections(key);
      return recorded?.images.entries.length === 2 && recorded;
    });
    expect(connection.images.entries.map((image) => [image.mimeType, image.sha256])).toEqual([
      ["image/png", png.sha256],
      ["image/jpeg", jpeg.sha256],
    ]);
    expect(connection.clientMessages.entries.map((entry) => entry.type)).toEqual(["setup", "realtimeInput", "realtimeInput"]);
    expect(log.ofType("closed")).toEqual([]);
  });

  it("dials with the key in the query and the correlation id, and sends the setup the design asks for", async () => {
    const key = newKey();
    const { provider } = await connect(key, { voice: "Kore" });
    expect(provider.name).toBe("gemini");
    expect(provider.inputFormat).toEqual({ encoding: "pcm16", sampleRate: 16000 });
    expect(provider.outputFormat).toEqual({ encoding: "pcm16", sampleRate: 24000 });

    const [connection] = await simulatorConnections(key);
    expect(connection?.query).toEqual({ key: "[redacted]" });
    expect(connection?.headers["x-correlation-id"]).toBe(key);
    expect(connection?.setup).toEqual({
      setup: {
        model: DEFAULT_GEMINI_MODEL,
        generationConfig: {
          responseModalities: ["AUDIO"],
          speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: "Kore" } } },
        },
        systemInstruction: { parts: [{ text: "You are a helpful bank assistant." }] },
        tools: [
          {
            functionDeclarations: [
              { name: BALANCE_TOOL.name, description: BALANCE_TOOL.description, parametersJsonSchema: BALANCE_TOOL.parameters },
            ],
          },
        ],
        realtimeInputConfig: {
          automaticActivityDetection: { disabled: false },
          activityHandling: "START_OF_ACTIVITY_INTERRUPTS",
        },
        inputAudioTranscription: {},
        outputAudioTranscription: {},
        sessionResumption: {},
        contextWindowCompression: { slidingWindow: {} },
      },
    });
    expect(connection?.clientMessages.entries.map((entry) => entry.type)).toEqual(["setup"]);

    const otherKey = newKey();
    await connect(otherKey, { tools: [], instructions: "" }, { model: "models/gemini-2.0-flash-live-001" });
    const [other] = await simulatorConnections(otherKey);
    const otherSetup = (other!.setup as { setup: Record<string, unknown> }).setup;
    expect(otherSetup.model).toBe("models/gemini-2.0-flash-live-001");
    expect(Object.keys(otherSetup)).not.toContain("tools");
    expect(Object.keys(otherSetup)).not.toContain("systemInstruction");
  });

  it("runs a turn: 16 kHz caller speech in, 24 kHz agent audio and both transcripts out", async () => {
    const key = newKey();
    const reply = "Your balance is one hundred and twenty dollars.";
    await putScenario(key, { callerTranscripts: ["Check my balance"], replies: [reply] });
    const { provider, log } = await connect(key);
    const sent = await speak(provider, "hello");

    const { event: done } = await log.next("agent_audio_done");
    const { event: handle } = await log.next("resumption_handle");
    const audio = log.ofType("agent_audio");
    expect(audio.length).toBeGreaterThan(1);
    expect(new Set(audio.map((event) => event.itemId))).toEqual(new Set([done.itemId]));
    expect(log.ofType("transcript")).toEqual([
      { type: "transcript", role: "caller", text: "Check my balance" },
      { type: "transcript", role: "agent", text: reply, itemId: done.itemId },
    ]);
    expect(handle.handle).toMatch(/^resume-/);

    const [connection] = await simulatorConnections(key);
    expect(connection?.audioIn.frames).toBe(sent.frames);
    // The simulator's detector runs on audio time at the declared rate: the turn ends within the last second
    // of the utterance (a wrong rate in the mimeType would shift it by a third or more).
    const stoppedMs = connection?.turns.entries[0]?.speechStoppedAudioMs ?? 0;
    expect(stoppedMs).toBeGreaterThan(sent.speechMs - 1000);
    expect(stoppedMs).toBeLessThanOrEqual(sent.speechMs);
    // Every byte the simulator sent was forwarded, and it is 24 kHz PCM16.
    expect(audioBytes(audio)).toBe(connection?.audioOut.bytes);
    expect(audioBytes(audio) / OUTPUT_BYTES_PER_MS).toBeCloseTo(connection?.audioOut.ms ?? 0, 6);
    expect(provider.stats.malformedMessages).toBe(0);
  });

  it("replays history as clientContent, and Gemini answers when the caller spoke last", async () => {
    const key = newKey();
    const history: ConversationItem[] = [
      { kind: "message", role: "caller", text: "I want to pay an invoice." },
      { kind: "message", role: "agent", text: "Which invoice?" },
      { kind: "tool", callId: "call-1", name: "lookup_invoice", arguments: '{"number":42}', result: '{"amount":10}' },
      { kind: "message", role: "caller", text: "Number 42." },
    ];
    const { log } = await connect(key, { history });
    const { event: done } = await log.next("agent_audio_done");
    expect(log.ofType("transcript")).toEqual([{ type: "transcript", role: "agent", text: "agent reply 1", itemId: done.itemId }]);

    const [connection] = await simulatorConnections(key);
    expect(connection?.clientMessages.entries.map((entry) => entry.type)).toEqual(["setup", "clientContent"]);
    expect(connection?.history.entries).toEqual([
      { role: "user", parts: [{ text: "I want to pay an invoice." }] },
      {
        role: "model",
        parts: [{ text: "Which invoice?" }, { text: '[Tool call lookup_invoice({"number":42}) returned {"amount":10}]' }],
      },
      { role: "user", parts: [{ text: "Number 42." }] },
    ]);
  });

  it("replays history that ends with the agent without prompting an answer; sendText completes a turn", async () => {
    const key = newKey();
    const history: ConversationItem[] = [
      { kind: "message", role: "caller", text: "Hello?" },
      { kind: "message", role: "agent", text: "Hi, how can I help?" },
    ];
    const { provider, log } = await connect(key, { history });
    provider.sendText("Pressed 4 2");
    await log.next("agent_audio_done");
    // The first reply answers the text: the replayed history itself produced none.
    expect(log.ofType("transcript").map((event) => event.text)).toEqual(["agent reply 1"]);
    const [connection] = await simulatorConnections(key);
    expect(connection?.responses.entries).toHaveLength(1);
    expect(connection?.history.entries.at(-1)).toEqual({ role: "user", parts: [{ text: "Pressed 4 2" }] });
  });

  it("round-trips a scripted tool call", async () => {
    const key = newKey();
    const reply = "You have one hundred and twenty dollars.";
    const toolCalls = [{ onTurn: 1, name: "lookup_balance", arguments: { account: "ACC-1" } }];
    await putScenario(key, { replies: [reply], toolCalls });
    const { provider, log } = await connect(key);
    await speak(provider, "hello");

    const { event: call } = await log.next("tool_call");
    expect(call.name).toBe("lookup_balance");
    expect(JSON.parse(call.arguments)).toEqual({ account: "ACC-1" });
    provider.sendToolResult(call.callId, call.name, '{"balance":120}');
    const { event: done } = await log.next("agent_audio_done");
    expect(log.ofType("transcript").at(-1)).toEqual({ type: "transcript", role: "agent", text: reply, itemId: done.itemId });

    const [connection] = await simulatorConnections(key);
    expect(connection?.toolCalls.entries[0]?.id).toBe(call.callId);
    expect(connection?.functionCallOutputs.entries).toMatchObject([
      { id: call.callId, name: "lookup_balance", output: { result: '{"balance":120}' } },
    ]);
  });

  it("resumes with a handle from the previous connection instead of replaying history", async () => {
    const key = newKey();
    const first = await connect(key);
    await speak(first.provider, "hello");
    const { event: update } = await first.log.next("resumption_handle");
    first.provider.close();

    const history: ConversationItem[] = [{ kind: "message", role: "caller", text: "Check my balance" }];
    const second = await connect(key, { history, resumptionHandle: update.handle });
    await speak(second.provider, "invoice");
    await second.log.next("agent_audio_done");
    // The conversation continued where it was: second caller turn, second reply.
    expect(second.log.ofType("transcript").map((event) => event.text)).toEqual(["caller turn 2", "agent reply 2"]);

    const [, resumed] = await simulatorConnections(key);
    expect(resumed?.resumption).toMatchObject({ requestedHandle: update.handle, known: true });
    expect(resumed?.setup).toMatchObject({ setup: { sessionResumption: { handle: update.handle } } });
    expect(resumed?.clientMessageCounts.clientContent).toBeUndefined();
  });

  it("turns goAway into ending_soon with the time left, then reports the close", async () => {
    const key = newKey();
    await putScenario(key, { goAwayAfterMs: 0 });
    const { log } = await connect(key);
    const { event } = await log.next("ending_soon");
    expect(event.timeLeftMs).toBe(5000);
    const { event: closed } = await log.next("closed");
    expect(closed).toEqual({ type: "closed", code: 1011, reason: "Deadline expired before operation could complete." });
  });

  it("reports a barge-in and ends the interrupted turn before the next one starts", async () => {
    const key = newKey();
    await putScenario(key, { replies: [LONG_REPLY] });
    const { provider, log } = await connect(key);
    await speak(provider, "hello");
    const { event: firstAudio, index: firstAudioIndex } = await log.next("agent_audio");
    await speak(provider, "interrupt");

    const { index: bargeIn } = await log.next("caller_speech_started", firstAudioIndex);
    const sameTurn = (event: { itemId?: string }) => event.itemId === firstAudio.itemId;
    const { index: interruptedDone } = await log.next("agent_audio_done", bargeIn, sameTurn);
    const { event: next } = await log.next("agent_audio_done", interruptedDone, (event) => !sameTurn(event));
    expect(log.ofType("agent_audio", bargeIn).filter(sameTurn)).toEqual([]);
    const agentText = log.ofType("transcript").filter((event) => event.role === "agent");
    const interruptedText = agentText.find(sameTurn)?.text ?? "";
    expect(LONG_REPLY.startsWith(interruptedText)).toBe(true);
    expect(interruptedText.length).toBeLessThan(LONG_REPLY.length);
    expect(agentText.find((event) => event.itemId === next.itemId)?.text).toBe("agent reply 2");

    const [connection] = await simulatorConnections(key);
    expect(connection?.bargeIns.entries[0]).toMatchObject({ agentAudioPlaying: true });
  });

  it("interrupt() discards the rest of that turn's audio without telling the provider", async () => {
    const key = newKey();
    await putScenario(key, { replies: [LONG_REPLY] });
    const { provider, log } = await connect(key);
    await speak(provider, "hello");
    const { event: firstAudio } = await log.next("agent_audio");
    provider.interrupt(firstAudio.itemId, 40);
    await log.next("agent_audio_done", 0, (event) => event.itemId === firstAudio.itemId);

    const [connection] = await simulatorConnections(key);
    const forwarded = log.ofType("agent_audio").length;
    expect(forwarded).toBeLessThan(connection?.audioOut.chunks ?? 0);
    expect(forwarded + provider.stats.discardedAgentAudio).toBe(connection?.audioOut.chunks);
    expect(Object.keys(connection?.clientMessageCounts ?? {}).sort()).toEqual(["realtimeInput", "setup"]);
  });

  it.each([401, 503] as const)("rejects connect when the upgrade is refused with %i", async (status) => {
    const key = newKey();
    await putScenario(key, { refuseUpgrade: status });
    const log = new ProviderEventLog();
    const connecting = dial(key, log);
    await expect(connecting).rejects.toBeInstanceOf(ProviderRefusedError);
    await expect(connecting).rejects.toMatchObject({ status });
    expect(log.events).toEqual([]);
    const [connection] = await simulatorConnections(key);
    expect(connection?.refusedWithStatus).toBe(status);
  });

  it("rejects connect for a wrong API key, a setup the service refuses, and a missing setupComplete", async () => {
    const log = new ProviderEventLog();
    await expect(dial(newKey(), log, {}, { apiKey: "AIza-wrong-key" })).rejects.toMatchObject({ status: 401 });
    // An empty model is an invalid argument: the service closes 1007 before setupComplete.
    const refusedSetup = dial(newKey(), log, {}, { model: "" });
    await expect(refusedSetup).rejects.toBeInstanceOf(ProviderSetupError);
    await expect(refusedSetup).rejects.toMatchObject({ closeCode: 1007 });
    const stalledKey = newKey();
    await putScenario(stalledKey, { stallAfterMessages: 0 });
    await expect(dial(stalledKey, log, {}, { setupTimeoutMs: 200 })).rejects.toMatchObject({ closeCode: null });
    expect(log.events).toEqual([]);
  });

  it("reports the service closing on a malformed message, and never throws once closed", async () => {
    const { provider, log } = await connect(newKey());
    provider.sendAudio("not base64!");
    const { event: closed } = await log.next("closed");
    expect(closed.code).toBe(1007);
    expect(closed.reason).toContain("Unsupported realtimeInput audio");

    provider.sendAudio("AAAA");
    provider.sendText("hello");
    provider.sendToolResult("call-1", "lookup_balance", "{}");
    provider.interrupt("item", 0);
    provider.close();
    expect(log.ofType("closed")).toHaveLength(1);
    expect(provider.stats.droppedCallerAudio).toBe(1);
  });

  it("closes with 1009 when a provider message is larger than the bound", async () => {
    const key = newKey();
    const { provider, log } = await connect(key, {}, { maxInboundMessageBytes: 1000 });
    await speak(provider, "hello");
    const { event: closed } = await log.next("closed");
    expect(closed.code).toBe(1009);
    expect(log.ofType("agent_audio")).toEqual([]);
    expect(await recordedClose(key)).toMatchObject({ code: 1009, by: "client" });
  });

  it(
    "gives up on an upgrade the provider does not answer within the connect timeout, and closes it when it comes late",
    async () => {
      const key = newKey();
      await putScenario(key, { upgradeDelayMs: CONNECT_TIMEOUT_MS + 1_500 });
      const refused = await dial(key, new ProviderEventLog()).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(ProviderRefusedError);
      expect((refused as ProviderRefusedError).message).toBe("connect failed: TimeoutError");
      // The upgrade the simulator answers afterwards is closed by the platform, not left open for the call's life.
      expect(await eventually(async () => (await simulatorConnections(key))[0]?.close ?? undefined, 250)).toMatchObject({
        code: 1000,
        by: "client",
      });
    },
    CONNECT_TIMEOUT_MS + 20_000,
  );

  it(
    "keeps the session open past the upgrade's connect timeout",
    async () => {
      const { provider, log } = await connect(newKey());
      // An idle wait, not a timing assertion: the upgrade's timeout must not outlive the upgrade.
      await new Promise((resolve) => setTimeout(resolve, CONNECT_TIMEOUT_MS + 1000));
      expect(log.ofType("closed")).toEqual([]);
      provider.close();
      // One policy for every adapter: a local close reports nothing (the owner knows it closed the session).
      expect(log.ofType("closed")).toEqual([]);
    },
    CONNECT_TIMEOUT_MS + 10_000,
  );
});

describe("Gemini Live adapter: supervisors", () => {
  it("a whisper and a takeover's lines join the context without completing a turn: the model does not answer them", async () => {
    const key = newKey();
    const { provider } = await connect(key);
    provider.guide("Offer the loyalty discount.");
    provider.addContext([{ kind: "message", role: "caller", text: "I want a person please" }]);
    const connection = await eventually(async () => {
      const snapshot = (await simulatorConnections(key))[0];
      return snapshot && snapshot.history.entries.length >= 2 && snapshot;
    });
    expect(JSON.stringify(connection.history.entries)).toContain("Offer the loyalty discount.");
    expect(connection.history.entries).toContainEqual({ role: "user", parts: [{ text: "I want a person please" }] });
    expect(connection.responses.entries).toHaveLength(0);
  });
});
