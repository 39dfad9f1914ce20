import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AudioFormat } from "../../../../durable-objects/media/audio/audio-format.ts";
import { connectDeepgramAgent } from "../../../../durable-objects/voice/providers/deepgram/agent.ts";
import type { ProviderEvent, ProviderSessionConfig, VoiceProvider } from "../../../../durable-objects/voice/providers/provider.ts";
import { ProviderRefusedError } from "../../../../durable-objects/voice/providers/provider-socket.ts";
import { ACCEPTS_IMAGES } from "../../../../durable-objects/voice/providers/registry.ts";
import { createLogger } from "../../../../workers/shared/logger.ts";
import { decodeSamples, framesOf, rms } from "../../support/audio-signals.ts";
import { eventually } from "../../support/carriers.ts";
import type { Utterance } from "../../support/provider-simulator.ts";
import { callerSpeech, onlyConnection, ProviderEventLog, putScenario, uniqueKey } from "../../support/provider-simulator.ts";

const PCMU: AudioFormat = { encoding: "pcmu", sampleRate: 8000 };
const LOOKUP_INVOICE = {
  name: "lookup_invoice",
  description: "Finds an invoice by number.",
  parameters: { type: "object", properties: { number: { type: "string" } }, required: ["number"] },
};

const open: VoiceProvider[] = [];
afterEach(() => {
  for (const provider of open.splice(0)) provider.close();
  vi.unstubAllGlobals();
});

function sessionConfig(overrides: Partial<ProviderSessionConfig> = {}): ProviderSessionConfig {
  return {
    instructions: "You are the Switchboard test agent.",
    tools: [LOOKUP_INVOICE],
    history: [],
    callAudio: PCMU,
    correlationId: uniqueKey("deepgram"),
    log: createLogger({ correlationId: "deepgram-adapter-test" }),
    ...overrides,
  };
}

interface ConnectOptions {
  keepAliveIntervalMs?: number;
  /** Runs inside the adapter's event handler, as a call object's reaction would. */
  react?: (event: ProviderEvent, log: ProviderEventLog) => void;
}

async function connect(config: ProviderSessionConfig, { keepAliveIntervalMs, react }: ConnectOptions = {}) {
  const log = new ProviderEventLog();
  const onEvent = (event: ProviderEvent) => {
    react?.(event, log);
    log.onEvent(event);
  };
  const provider = await connectDeepgramAgent({ url: env.DEEPGRAM_AGENT_URL, apiKey: env.DEEPGRAM_API_KEY, onEvent }, config, {
    keepAliveIntervalMs,
  });
  open.push(provider);
  return { provider, log };
}

/** Sends a recorded utterance as 20 ms frames (faster than real time: the simulator's VAD runs on audio time). */
async function speak(provider: VoiceProvider, utterance: Utterance): Promise<{ frames: number; bytes: number }> {
  const format = provider.inputFormat;
  const speech = await callerSpeech(utterance, format.encoding, format.sampleRate);
  const frames = framesOf(speech, format);
  for (const frame of frames) provider.sendAudio(frame);
  return { frames: frames.length, bytes: speech.length };
}

interface DeepgramSettingsSeen {
  audio: { input: unknown; output: unknown };
  agent: {
    listen: { provider: { model: string } };
    think: { provider: unknown; prompt: string; functions: unknown[] };
    speak: { provider: { model: string } };
  };
}

describe("Deepgram Voice Agent adapter", () => {
  it("takes no images (the Voice Agent has no vision), as the registry says", async () => {
    const { provider } = await connect(sessionConfig());
    expect(provider.sendImage).toBeUndefined();
    expect(ACCEPTS_IMAGES.deepgram).toBe(false);
  });

  it("authenticates, tags the connection, and sends Settings with the call's format, prompt, history and tools", async () => {
    const config = sessionConfig({
      history: [
        { kind: "message", role: "caller", text: "Is invoice 42 paid?" },
        { kind: "tool", callId: "c1", name: "lookup_invoice", arguments: '{"number":"42"}', result: '{"paid":true}' },
        { kind: "message", role: "agent", text: "Yes, it is paid." },
      ],
    });
    const { provider } = await connect(config);
    expect(provider.name).toBe("deepgram");
    expect(provider.inputFormat).toEqual(PCMU);
    expect(provider.outputFormat).toEqual(PCMU);

    const connection = await onlyConnection(config.correlationId);
    expect(connection.headers).toMatchObject({ authorization: "Token [redacted]", "x-correlation-id": config.correlationId });
    const settings = connection.setup as DeepgramSettingsSeen;
    expect(settings.audio).toEqual({
      input: { encoding: "mulaw", sample_rate: 8000 },
      output: { encoding: "mulaw", sample_rate: 8000, container: "none" },
    });
    expect(settings.agent.listen.provider.model).toBe("nova-3");
    expect(settings.agent.think.provider).toEqual({ type: "open_ai", model: "gpt-4o-mini" });
    expect(settings.agent.speak.provider.model).toBe("aura-2-thalia-en");
    expect(settings.agent.think.functions).toEqual([LOOKUP_INVOICE]);
    const prompt = settings.agent.think.prompt;
    expect(prompt.startsWith(config.instructions)).toBe(true);
    const lines = ["Caller: Is invoice 42 paid?", 'lookup_invoice({"number":"42"}) returned: {"paid":true}', "Agent: Yes, it is paid."];
    const positions = lines.map((line) => prompt.indexOf(line));
    expect(positions.every((position) => position > config.instructions.length)).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });

  it.each([
    [{ encoding: "pcma", sampleRate: 8000 }, "alaw", 8000],
    [{ encoding: "pcm16", sampleRate: 16000 }, "linear16", 16000],
  ] as const)("passes %o through as %s at %i Hz both ways", async (callAudio, encoding, rate) => {
    const config = sessionConfig({ callAudio });
    const { provider } = await connect(config);
    expect(provider.inputFormat).toEqual(callAudio);
    const connection = await onlyConnection(config.correlationId);
    expect((connection.setup as DeepgramSettingsSeen).audio).toEqual({
      input: { encoding, sample_rate: rate },
      output: { encoding, sample_rate: rate, container: "none" },
    });
  });

  it("runs a turn: caller speech in as binary frames, transcripts and agent audio out", async () => {
    const config = sessionConfig();
    await putScenario(config.correlationId, { callerTranscripts: ["What is my balance?"], replies: ["Your balance is ten dollars."] });
    const { provider, log } = await connect(config);
    const sent = await speak(provider, "hello");

    const done = (await log.next("agent_audio_done")).event;
    const audio = log.ofType("agent_audio");
    expect(audio.length).toBeGreaterThan(0);
    expect(new Set(audio.map((chunk) => chunk.itemId))).toEqual(new Set([done.itemId]));
    expect(log.ofType("transcript")).toEqual([
      { type: "transcript", role: "caller", text: "What is my balance?" },
      // The agent's line names the turn its audio belongs to, so a barge-in into it can mark it interrupted.
      { type: "transcript", role: "agent", text: "Your balance is ten dollars.", itemId: done.itemId },
    ]);
    // The agent's voice arrives intact: as many bytes as the simulator sent, and clearly not silence.
    const samples = decodeSamples(
      audio.map((chunk) => chunk.base64),
      provider.outputFormat,
    );
    const connection = await onlyConnection(config.correlationId);
    expect(samples.length).toBe(connection.audioOut.bytes);
    expect(rms(samples)).toBeGreaterThan(1000);
    // Caller audio went as raw binary frames, one per carrier frame, and nothing else was sent as audio.
    expect(connection.clientMessageCounts["binary-audio"]).toBe(sent.frames);
    expect(connection.audioIn.bytes).toBe(sent.bytes);
    expect(connection.turns.entries).toHaveLength(1);
  });

  it("round-trips a client-side tool call, then speaks the answer", async () => {
    const config = sessionConfig();
    await putScenario(config.correlationId, {
      toolCalls: [{ onTurn: 1, name: "lookup_invoice", arguments: { number: "42" } }],
      replies: ["Invoice 42 is paid."],
    });
    const { provider, log } = await connect(config);
    await speak(provider, "invoice");

    const call = (await log.next("tool_call")).event;
    expect(call.name).toBe("lookup_invoice");
    expect(JSON.parse(call.arguments)).toEqual({ number: "42" });
    provider.sendToolResult(call.callId, call.name, '{"paid":true}');
    await log.next("transcript", 0, (event) => event.role === "agent" && event.text === "Invoice 42 is paid.");
    await log.next("agent_audio_done");

    const connection = await onlyConnection(config.correlationId);
    expect(connection.functionCallOutputs.entries).toMatchObject([{ id: call.callId, name: "lookup_invoice", output: '{"paid":true}' }]);
  });

  it("reports barge-in, and the next turn's audio flows under a new item id", async () => {
    const config = sessionConfig();
    // A long first reply, so the caller talks over it while it is still being sent.
    await putScenario(config.correlationId, { replies: ["Let me read you the whole statement. ".repeat(8), "Sure."] });
    // As a call object would: on barge-in, drop the rest of the playing item.
    const { provider, log } = await connect(config, {
      react: (event, log) => {
        const playing = log.ofType("agent_audio").at(-1)?.itemId;
        if (event.type === "caller_speech_started" && playing) provider.interrupt(playing, 0);
      },
    });
    await speak(provider, "hello");
    const first = (await log.next("agent_audio")).event;
    await speak(provider, "interrupt");

    await log.next("caller_speech_started");
    const done = (await log.next("agent_audio_done")).event;
    expect(done.itemId).not.toBe(first.itemId);
    expect(log.ofType("agent_audio").some((chunk) => chunk.itemId === done.itemId)).toBe(true);
    expect(log.ofType("agent_audio_done").map((event) => event.itemId)).toEqual([done.itemId]);
    const connection = await onlyConnection(config.correlationId);
    expect(connection.bargeIns.entries).toHaveLength(1);
    expect(connection.responses.entries[0]?.outcome).toBe("interrupted");
  });

  it("interrupt drops the rest of that item's audio already in flight", async () => {
    const config = sessionConfig();
    await putScenario(config.correlationId, { replies: ["This reply is long enough to arrive in many chunks."] });
    const { provider, log } = await connect(config, {
      react: (event) => {
        if (event.type === "agent_audio") provider.interrupt(event.itemId, 0);
      },
    });
    await speak(provider, "hello");
    const done = (await log.next("agent_audio_done")).event;

    const connection = await onlyConnection(config.correlationId);
    expect(connection.audioOut.chunks).toBeGreaterThan(3);
    expect(log.ofType("agent_audio").map((chunk) => chunk.itemId)).toEqual([done.itemId]);
  });

  it("sends typed text as InjectUserMessage and KeepAlive while no audio flows", async () => {
    const config = sessionConfig();
    const { provider, log } = await connect(config, { keepAliveIntervalMs: 200 });
    provider.sendText("  1 2 3  ");
    await log.next("transcript", 0, (event) => event.role === "caller" && event.text === "1 2 3");
    const keptAlive = await eventually(async () => {
      const connection = await onlyConnection(config.correlationId);
      return (connection.clientMessageCounts.KeepAlive ?? 0) >= 2 && connection;
    });
    expect(keptAlive.history.entries).toContainEqual({ type: "InjectUserMessage", content: "1 2 3" });
    expect(keptAlive.close).toBeNull();

    provider.close();
    const closed = await eventually(async () => (await onlyConnection(config.correlationId)).close);
    expect(closed).toEqual({ code: 1000, reason: "session closed", by: "client" });
    expect(log.ofType("closed")).toEqual([]);
  });

  it("takes a supervisor's whisper and a takeover's lines as UpdatePrompt (the whole prompt), never as a turn", async () => {
    const config = sessionConfig();
    const { provider } = await connect(config);
    provider.guide("Offer the loyalty discount.");
    provider.addContext([{ kind: "message", role: "caller", text: "I want a person please" }]);
    const updates = await eventually(async () => {
      const connection = await onlyConnection(config.correlationId);
      return connection.configUpdates.entries.length >= 2 && connection;
    });
    const [guided, withContext] = updates.configUpdates.entries as Array<{ type: string; prompt: string }>;
    expect(guided!.type).toBe("UpdatePrompt");
    expect(guided!.prompt).toContain(config.instructions);
    expect(guided!.prompt).toContain("Offer the loyalty discount.");
    expect(withContext!.prompt).toContain("Offer the loyalty discount.");
    expect(withContext!.prompt).toContain("Caller: I want a person please");
    expect(updates.clientMessageCounts.InjectUserMessage ?? 0).toBe(0);
    expect(updates.clientMessageCounts.InjectAgentMessage ?? 0).toBe(0);
  });

  it("reports the provider closing the session", async () => {
    const config = sessionConfig();
    await putScenario(config.correlationId, { closeAfterMs: { afterMs: 50, code: 4000, reason: "session over" } });
    const { log } = await connect(config);
    expect((await log.next("closed")).event).toEqual({ type: "closed", code: 4000, reason: "session over" });
  });

  it.each([401, 429, 503] as const)("rejects connect when the upgrade is refused with %i", async (status) => {
    const config = sessionConfig();
    await putScenario(config.correlationId, { refuseUpgrade: status });
    const refusal = connect(config);
    await expect(refusal).rejects.toBeInstanceOf(ProviderRefusedError);
    await expect(refusal).rejects.toMatchObject({ status });
  });

  it("rejects connect with a wrong key, and when the connection drops before SettingsApplied", async () => {
    const log = new ProviderEventLog();
    const options = { url: env.DEEPGRAM_AGENT_URL, apiKey: "dg-wrong-key", onEvent: log.onEvent };
    await expect(connectDeepgramAgent(options, sessionConfig())).rejects.toMatchObject({ status: 401 });

    const dropped = sessionConfig();
    await putScenario(dropped.correlationId, { dropAfterMessages: 1 });
    const withDrop = { url: env.DEEPGRAM_AGENT_URL, apiKey: env.DEEPGRAM_API_KEY, onEvent: log.onEvent };
    await expect(connectDeepgramAgent(withDrop, dropped)).rejects.toMatchObject({ name: "ProviderSetupError", code: "closed" });
    expect(log.events).toEqual([]);
  });
});

/** A fake Deepgram in this isolate (a WebSocketPair behind a stubbed fetch), for messages the simulator never sends. */
function fakeDeepgram(): { server: () => Promise<WebSocket>; binaryFramesReceived: () => number } {
  let binaryFrames = 0;
  let accept: (socket: WebSocket) => void = () => {};
  const accepted = new Promise<WebSocket>((resolve) => (accept = resolve));
  vi.stubGlobal("fetch", async () => {
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair) as [WebSocket, WebSocket];
    server.accept();
    server.addEventListener("message", (event) => {
      if (typeof event.data !== "string") binaryFrames++;
      else if (JSON.parse(event.data).type === "Settings") server.send('{"type":"SettingsApplied"}');
    });
    server.send('{"type":"Welcome","request_id":"r1"}');
    accept(server);
    return new Response(null, { status: 101, webSocket: client });
  });
  return { server: () => accepted, binaryFramesReceived: () => binaryFrames };
}

describe("Deepgram adapter bounds (fake server)", () => {
  it("skips and counts malformed messages and frames, ignores server-side functions, closes 1009 when oversized", async () => {
    const fake = fakeDeepgram();
    const { provider, log } = await connect(sessionConfig());
    const server = await fake.server();
    provider.sendAudio("not base64!");
    provider.sendAudio("A".repeat(256 * 1024 + 4));
    const closedByClient = new Promise<number>((resolve) => server.addEventListener("close", (event) => resolve(event.code)));
    for (const bad of ["{not json", "[]", '{"no":"type"}', '{"type":"ConversationText","role":"robot","content":"x"}']) server.send(bad);
    server.send('{"type":"SomethingNew"}');
    server.send(
      JSON.stringify({
        type: "FunctionCallRequest",
        functions: [
          { id: "s1", name: "web_search", arguments: "{}", client_side: false },
          { id: "c1", name: "lookup_invoice", arguments: '{"number":"7"}', client_side: true },
        ],
      }),
    );
    server.send("x".repeat(1024 * 1024 + 1));

    expect(await closedByClient).toBe(1009);
    await log.next("closed");
    expect(fake.binaryFramesReceived()).toBe(0);
    expect(log.ofType("error").map((event) => [event.code, event.message.replace(/^.*\(/, "(")])).toEqual([
      ["malformed_audio", "(1 so far)"],
      ["malformed_audio", "(2 so far)"],
      ["malformed_message", "(1 so far)"],
      ["malformed_message", "(2 so far)"],
      ["malformed_message", "(4 so far)"],
    ]);
    expect(log.ofType("tool_call")).toEqual([{ type: "tool_call", callId: "c1", name: "lookup_invoice", arguments: '{"number":"7"}' }]);
    expect(log.ofType("closed")).toEqual([{ type: "closed", code: 1009, reason: "message too big" }]);
    // Nothing throws once the session is over.
    provider.sendAudio("AAAA");
    provider.sendText("hello");
    provider.sendToolResult("c1", "lookup_invoice", "{}");
  });
});
