import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { AudioFormat } from "../../../../durable-objects/media/audio/audio-format.ts";
import { encodeBase64 } from "../../../../durable-objects/media/audio/pcm16.ts";
import type { OpenAiRealtimeOptions } from "../../../../durable-objects/voice/providers/openai/realtime.ts";
import { connectOpenAiRealtime, type OpenAiRealtimeProvider } from "../../../../durable-objects/voice/providers/openai/realtime.ts";
import type { ProviderSessionConfig } from "../../../../durable-objects/voice/providers/provider.ts";
import { ProviderRefusedError, ProviderSetupError } from "../../../../durable-objects/voice/providers/provider-socket.ts";
import { ACCEPTS_IMAGES } from "../../../../durable-objects/voice/providers/registry.ts";
import { createLogger } from "../../../../workers/shared/logger.ts";
import { eventually } from "../../support/carriers.ts";
import type { Utterance } from "../../support/provider-simulator.ts";
import {
  base64Bytes,
  base64Frames,
  callerSpeech,
  onlyConnection,
  ProviderEventLog,
  putScenario,
  uniqueKey,
} from "../../support/provider-simulator.ts";

/**
 * The OpenAI Realtime adapter against the simulated service over real sockets, driven with recorded caller
 * speech that the simulator's VAD turns into turns. What the adapter sent is read back from the simulator's
 * recording of the connection; nothing asserts on wall-clock time.
 */

const PCMU: AudioFormat = { encoding: "pcmu", sampleRate: 8000 };
const LOOKUP_BALANCE = {
  name: "lookup_balance",
  description: "Balance of one of the caller's accounts",
  parameters: { type: "object", properties: { account: { type: "string" } }, required: ["account"] },
};
/** ~7 s of agent speech: still playing when the caller talks over it. */
const LONG_REPLY =
  "Your savings balance is one hundred and twenty rupees and fifty paise, and your current account holds nine hundred rupees.";

function sessionConfig(key: string, overrides: Partial<ProviderSessionConfig> = {}): ProviderSessionConfig {
  return {
    instructions: "You are the bank's phone assistant. Be brief.",
    tools: [LOOKUP_BALANCE],
    history: [],
    callAudio: PCMU,
    correlationId: key,
    log: createLogger({ correlationId: key }),
    ...overrides,
  };
}

function options(log: ProviderEventLog, extra: Partial<OpenAiRealtimeOptions> = {}): OpenAiRealtimeOptions {
  return { url: env.OPENAI_REALTIME_URL, apiKey: env.OPENAI_API_KEY, onEvent: log.onEvent, ...extra };
}

/** Streams a recording to the provider in 20 ms frames of its input format; returns the bytes sent. */
async function speak(provider: OpenAiRealtimeProvider, utterance: Utterance): Promise<number> {
  const { encoding, sampleRate } = provider.inputFormat;
  const speech = await callerSpeech(utterance, encoding, sampleRate);
  const frameBytes = encoding === "pcm16" ? (sampleRate / 50) * 2 : sampleRate / 50;
  for (const frame of base64Frames(speech, frameBytes)) provider.sendAudio(frame);
  return speech.length;
}

/** Milliseconds of agent audio the log holds for `itemId` (G.711: 8 bytes per ms). */
function receivedMs(log: ProviderEventLog, itemId: string, bytesPerMs: number, to = Infinity): number {
  const audio = log.ofType("agent_audio", 0, to).filter((event) => event.itemId === itemId);
  return audio.reduce((total, event) => total + base64Bytes(event.base64), 0) / bytesPerMs;
}

/** Resolves once the agent audio received for `itemId` reaches `ms`. */
async function audioReceived(log: ProviderEventLog, itemId: string, ms: number): Promise<void> {
  let from = 0;
  while (receivedMs(log, itemId, 8) < ms) {
    from = (await log.next("agent_audio", from, (event) => event.itemId === itemId)).index + 1;
  }
}

/** A few bytes that start as a JPEG does, base64, with their SHA-256 (hex): a frame of a caller's screen. */
async function jpeg(fill: number): Promise<{ base64: string; sha256: string }> {
  const bytes = new Uint8Array(512).fill(fill);
  bytes.set([0xff, 0xd8, 0xff, 0xe0]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return { base64: encodeBase64(bytes), sha256: [...digest].map((byte) => byte.toString(16).padStart(2, "0")).join("") };
}

describe("OpenAI Realtime adapter", () => {
  it("configures a G.711 pass-through session, replays history first, and runs a full turn", async () => {
    const key = uniqueKey("openai-turn");
    const reply = "Your balance is two hundred rupees.";
    await putScenario(key, { callerTranscripts: ["I would like to check my balance"], replies: [reply] });
    const log = new ProviderEventLog();
    const history: ProviderSessionConfig["history"] = [
      { kind: "message", role: "caller", text: "Hi, this is Priya." },
      { kind: "message", role: "agent", text: "Hello Priya, how can I help?" },
      { kind: "tool", callId: "call_earlier", name: "lookup_customer", arguments: '{"name":"Priya"}', result: '{"id":7}' },
    ];
    const provider = await connectOpenAiRealtime(options(log), sessionConfig(key, { history, voice: "cedar" }));
    try {
      expect(provider.inputFormat).toEqual(PCMU);
      expect(provider.outputFormat).toEqual(PCMU);
      const bytesSent = await speak(provider, "hello");

      const { event: callerText } = await log.next("transcript", 0, (event) => event.role === "caller");
      const { event: agentText } = await log.next("transcript", 0, (event) => event.role === "agent");
      const { event: done, index: doneIndex } = await log.next("agent_audio_done");
      expect(callerText.text).toBe("I would like to check my balance");
      expect(agentText).toEqual({ type: "transcript", role: "agent", text: reply, itemId: done.itemId });
      const audio = log.ofType("agent_audio", 0, doneIndex);
      expect(audio.length).toBeGreaterThan(1);
      expect(new Set(audio.map((event) => event.itemId))).toEqual(new Set([done.itemId]));
      expect(log.ofType("caller_speech_started")).toHaveLength(1);
      expect(log.ofType("error")).toEqual([]);

      const connection = await onlyConnection(key);
      expect(connection).toMatchObject({
        query: { model: "gpt-realtime" },
        headers: { "x-correlation-id": key, authorization: "Bearer [redacted]" },
        setup: {
          type: "session.update",
          session: {
            type: "realtime",
            model: "gpt-realtime",
            output_modalities: ["audio"],
            instructions: "You are the bank's phone assistant. Be brief.",
            audio: {
              input: {
                format: { type: "audio/pcmu" },
                transcription: { model: "gpt-4o-transcribe" },
                turn_detection: { type: "server_vad", create_response: true, interrupt_response: true },
              },
              output: { format: { type: "audio/pcmu" }, voice: "cedar" },
            },
            tools: [{ type: "function", ...LOOKUP_BALANCE }],
            tool_choice: "auto",
          },
        },
      });
      expect(connection.history.entries).toEqual([
        { type: "message", role: "user", content: [{ type: "input_text", text: "Hi, this is Priya." }] },
        { type: "message", role: "assistant", content: [{ type: "output_text", text: "Hello Priya, how can I help?" }] },
        { type: "function_call", call_id: "call_earlier", name: "lookup_customer", arguments: '{"name":"Priya"}' },
        { type: "function_call_output", call_id: "call_earlier", output: '{"id":7}' },
      ]);
      const sent = connection.clientMessages.entries.map((entry) => entry.type);
      expect(sent.slice(0, 6)).toEqual([
        "session.update",
        ...Array<string>(4).fill("conversation.item.create"),
        "input_audio_buffer.append",
      ]);
      // Pass-through both ways: µ-law bytes in and out exactly as sent, at one byte per 8 kHz sample.
      expect(connection.audioIn.bytes).toBe(bytesSent);
      expect(connection.audioOut.bytes).toBe(audio.reduce((total, event) => total + base64Bytes(event.base64), 0));
      expect(connection.audioOut.bytes).toBe(connection.audioOut.ms * 8);
      expect(connection.turns.entries).toHaveLength(1);
    } finally {
      provider.close();
    }
    expect(log.ofType("closed")).toEqual([]);
    await vi.waitFor(async () => expect((await onlyConnection(key)).close).toMatchObject({ code: 1000, by: "client" }));
  });

  it.each([
    { callAudio: { encoding: "pcma", sampleRate: 8000 }, wire: { type: "audio/pcma" }, bytesPerMs: 8 },
    { callAudio: { encoding: "pcm16", sampleRate: 16000 }, wire: { type: "audio/pcm", rate: 24000 }, bytesPerMs: 48 },
  ] as const)("speaks $wire.type for a $callAudio.encoding call", async ({ callAudio, wire, bytesPerMs }) => {
    const key = uniqueKey("openai-format");
    const log = new ProviderEventLog();
    const provider = await connectOpenAiRealtime(options(log), sessionConfig(key, { callAudio }));
    try {
      const expected = wire.type === "audio/pcma" ? callAudio : { encoding: "pcm16", sampleRate: 24000 };
      expect(provider.inputFormat).toEqual(expected);
      expect(provider.outputFormat).toEqual(expected);
      const bytesSent = await speak(provider, "goodbye");
      const { event: done } = await log.next("agent_audio_done");
      const connection = await onlyConnection(key);
      expect(connection.setup).toMatchObject({ session: { audio: { input: { format: wire }, output: { format: wire } } } });
      expect(connection.audioIn.bytes).toBe(bytesSent);
      expect(connection.turns.entries).toHaveLength(1);
      expect(receivedMs(log, done.itemId, bytesPerMs)).toBeCloseTo(connection.audioOut.ms, 6);
    } finally {
      provider.close();
    }
  });

  it("round-trips a scripted tool call, then speaks the answer", async () => {
    const key = uniqueKey("openai-tool");
    const reply = "Your savings balance is five hundred rupees.";
    const toolCalls = [{ onTurn: 1, name: "lookup_balance", arguments: { account: "savings" } }];
    await putScenario(key, { toolCalls, replies: [reply] });
    const log = new ProviderEventLog();
    const provider = await connectOpenAiRealtime(options(log), sessionConfig(key));
    try {
      await speak(provider, "hello");
      const { event: call, index } = await log.next("tool_call");
      expect(call).toMatchObject({ name: "lookup_balance", arguments: '{"account":"savings"}' });
      provider.sendToolResult(call.callId, call.name, '{"balance":500}');
      const { event: answer } = await log.next("transcript", index, (event) => event.role === "agent");
      expect(answer.text).toBe(reply);
      await log.next("agent_audio_done", index);

      const connection = await onlyConnection(key);
      expect(connection.toolCalls.entries.map((entry) => entry.id)).toEqual([call.callId]);
      expect(connection.functionCallOutputs.entries).toMatchObject([{ id: call.callId, output: '{"balance":500}' }]);
      expect(connection.responses.entries.map((entry) => [entry.kind, entry.outcome])).toEqual([
        ["tool-call", "completed"],
        ["audio", "completed"],
      ]);
      expect(connection.serverMessages.entries.filter((entry) => entry.type === "error")).toEqual([]);
      expect(log.ofType("error")).toEqual([]);
    } finally {
      provider.close();
    }
  });

  it("truncates a barged-in reply to the audio received, even when more was 'heard', without provoking errors", async () => {
    const key = uniqueKey("openai-barge-in");
    await putScenario(key, { replies: [LONG_REPLY, LONG_REPLY] });
    const log = new ProviderEventLog();
    const provider = await connectOpenAiRealtime(options(log), sessionConfig(key));
    try {
      // First barge-in: the call claims more was heard than ever arrived.
      await speak(provider, "hello");
      const { event: first } = await log.next("agent_audio");
      await audioReceived(log, first.itemId, 200);
      const { index: speechIndex } = await (async () => {
        const from = log.events.length;
        await speak(provider, "interrupt");
        return log.next("caller_speech_started", from);
      })();
      const receivedAtInterrupt = receivedMs(log, first.itemId, 8);
      const interruptIndex = log.events.length;
      provider.interrupt(first.itemId, 600_000);
      await vi.waitFor(async () => expect((await onlyConnection(key)).truncations.entries).toHaveLength(1));
      expect(speechIndex).toBeLessThan(interruptIndex);

      // Second barge-in, on the reply to the interrupting utterance: the call heard less than arrived.
      const { event: second } = await log.next("agent_audio", interruptIndex, (event) => event.itemId !== first.itemId);
      await audioReceived(log, second.itemId, 200);
      const from = log.events.length;
      await speak(provider, "goodbye");
      await log.next("caller_speech_started", from);
      provider.interrupt(second.itemId, 120);
      await vi.waitFor(async () => expect((await onlyConnection(key)).truncations.entries).toHaveLength(2));

      const connection = await onlyConnection(key);
      const [overHeard, underHeard] = connection.truncations.entries;
      expect(overHeard).toMatchObject({ itemId: first.itemId, audioEndMs: Math.floor(receivedAtInterrupt), accepted: true });
      expect(overHeard?.audioEndMs).toBeLessThanOrEqual(overHeard?.generatedMs ?? -1);
      expect(underHeard).toMatchObject({ itemId: second.itemId, audioEndMs: 120, accepted: true });
      expect(connection.bargeIns.entries).toHaveLength(2);
      expect(connection.responses.entries.slice(0, 2).map((entry) => entry.outcome)).toEqual(["interrupted", "interrupted"]);
      expect(connection.serverMessages.entries.filter((entry) => entry.type === "error")).toEqual([]);
      expect(log.ofType("error")).toEqual([]);
      // What the caller was told to drop is not played: no audio of an interrupted item after its interrupt.
      const late = log.ofType("agent_audio", interruptIndex).filter((event) => event.itemId === first.itemId);
      expect(late).toEqual([]);
      expect(log.ofType("agent_audio_done").map((event) => event.itemId)).toContain(first.itemId);
    } finally {
      provider.close();
    }
  });

  it("takes text while the agent speaks, and asks for its answer once the current response is done", async () => {
    const key = uniqueKey("openai-text");
    await putScenario(key, { replies: [LONG_REPLY, "You pressed one."] });
    const log = new ProviderEventLog();
    const provider = await connectOpenAiRealtime(options(log), sessionConfig(key));
    try {
      await speak(provider, "hello");
      const { event: speaking } = await log.next("agent_audio");
      provider.sendText("The caller pressed 1.");
      const { event: answer } = await log.next("transcript", 0, (event) => event.role === "agent" && event.itemId !== speaking.itemId);
      expect(answer.text).toBe("You pressed one.");

      const connection = await onlyConnection(key);
      expect(connection.history.entries).toEqual([
        { type: "message", role: "user", content: [{ type: "input_text", text: "The caller pressed 1." }] },
      ]);
      // The service takes one response at a time: asking during the first would have been refused.
      expect(connection.responses.entries.map((entry) => entry.outcome)).toEqual(["completed", "completed"]);
      expect(connection.serverMessages.entries.filter((entry) => entry.type === "error")).toEqual([]);
      expect(log.ofType("error")).toEqual([]);
    } finally {
      provider.close();
    }
  });

  it("cancels the response and truncates when the call interrupts without caller speech", async () => {
    const key = uniqueKey("openai-cancel");
    await putScenario(key, { replies: [LONG_REPLY] });
    const log = new ProviderEventLog();
    const provider = await connectOpenAiRealtime(options(log), sessionConfig(key));
    try {
      await speak(provider, "hello");
      const { event: speaking } = await log.next("agent_audio");
      await audioReceived(log, speaking.itemId, 200);
      const interruptIndex = log.events.length;
      provider.interrupt(speaking.itemId, 100);
      await log.next("agent_audio_done", interruptIndex, (event) => event.itemId === speaking.itemId);

      const connection = await onlyConnection(key);
      expect(connection.clientMessageCounts["response.cancel"]).toBe(1);
      expect(connection.responses.entries.map((entry) => entry.outcome)).toEqual(["cancelled"]);
      expect(connection.truncations.entries).toMatchObject([{ itemId: speaking.itemId, audioEndMs: 100, accepted: true }]);
      expect(connection.serverMessages.entries.filter((entry) => entry.type === "error")).toEqual([]);
      const late = log.ofType("agent_audio", interruptIndex).filter((event) => event.itemId === speaking.itemId);
      expect(late).toEqual([]);
    } finally {
      provider.close();
    }
  });

  it.each([401, 429, 503] as const)("rejects connect() with the status of a %i refusal", async (status) => {
    const key = uniqueKey("openai-refused");
    await putScenario(key, { refuseUpgrade: status });
    const log = new ProviderEventLog();
    const outcome = connectOpenAiRealtime(options(log), sessionConfig(key));
    await expect(outcome).rejects.toBeInstanceOf(ProviderRefusedError);
    await expect(outcome).rejects.toMatchObject({ status });
    expect((await onlyConnection(key)).refusedWithStatus).toBe(status);
    expect(log.events).toEqual([]);
  });

  it("sends a screen image as a user input_image item, keeps only the latest, and asks for no response", async () => {
    expect(ACCEPTS_IMAGES.openai).toBe(true);
    const key = uniqueKey("openai-image");
    const log = new ProviderEventLog();
    const provider = await connectOpenAiRealtime(options(log), sessionConfig(key));
    try {
      const [first, second] = [await jpeg(1), await jpeg(2)];
      provider.sendImage({ mimeType: "image/jpeg", base64: first.base64 });
      provider.sendImage({ mimeType: "image/jpeg", base64: second.base64 });
      await eventually(async () => (await onlyConnection(key)).clientMessageCounts["conversation.item.delete"] === 1);
      const connection = await onlyConnection(key);
      expect(connection.images.entries.map((image) => [image.mimeType, image.sha256])).toEqual([
        ["image/jpeg", first.sha256],
        ["image/jpeg", second.sha256],
      ]);
      expect(connection.history.entries).toEqual([
        {
          id: "screen_1",
          type: "message",
          role: "user",
          content: [{ type: "input_image", image_url: `data:image/jpeg;base64,${first.base64}` }],
        },
        {
          id: "screen_2",
          type: "message",
          role: "user",
          content: [{ type: "input_image", image_url: `data:image/jpeg;base64,${second.base64}` }],
        },
      ]);
      expect(connection.clientMessages.entries.map((entry) => entry.type).slice(1)).toEqual([
        "conversation.item.create",
        "conversation.item.create",
        "conversation.item.delete",
      ]);
      expect(log.ofType("error")).toEqual([]);
    } finally {
      provider.close();
    }
  });

  it("rejects connect() with 401 for a wrong API key", async () => {
    const key = uniqueKey("openai-bad-key");
    const outcome = connectOpenAiRealtime(options(new ProviderEventLog(), { apiKey: "sk-not-the-key" }), sessionConfig(key));
    await expect(outcome).rejects.toMatchObject({ name: "ProviderRefusedError", status: 401 });
  });

  it("rejects connect() when the service answers session.update with an error", async () => {
    const key = uniqueKey("openai-setup-error");
    const outcome = connectOpenAiRealtime(options(new ProviderEventLog()), sessionConfig(key, { voice: "robot" }));
    await expect(outcome).rejects.toBeInstanceOf(ProviderSetupError);
    await expect(outcome).rejects.toMatchObject({ code: "invalid_value", message: expect.stringContaining("'robot'") });
    await vi.waitFor(async () => expect((await onlyConnection(key)).close).toMatchObject({ by: "client" }));
  });

  it("rejects connect() when the connection is lost before the session is ready", async () => {
    const key = uniqueKey("openai-setup-drop");
    await putScenario(key, { dropAfterMessages: 1 }); // session.created, then the TCP connection is destroyed
    const outcome = connectOpenAiRealtime(options(new ProviderEventLog()), sessionConfig(key));
    await expect(outcome).rejects.toMatchObject({ name: "ProviderSetupError", code: "closed" });
  });

  it("reports in-session errors as events, fatal only when they end the session", async () => {
    const key = uniqueKey("openai-errors");
    const expired = { afterMs: 1000, code: "session_expired", message: "Your session hit the maximum duration." };
    await putScenario(key, { errorEventAfterMs: expired });
    const log = new ProviderEventLog();
    const provider = await connectOpenAiRealtime(options(log), sessionConfig(key));
    try {
      provider.sendToolResult("call_never_made", "lookup_balance", "{}");
      const { event: invalid } = await log.next("error");
      expect(invalid).toMatchObject({ code: "invalid_value", fatal: false });
      const { event: fatal } = await log.next("error", 0, (event) => event.code === "session_expired");
      expect(fatal).toEqual({ type: "error", code: "session_expired", message: expired.message, fatal: true });
    } finally {
      provider.close();
    }
  });

  it("reports the service closing with 1011, and a lost connection, as closed", async () => {
    const closingKey = uniqueKey("openai-close-1011");
    // Long enough after the upgrade for the session to be ready (the connect below would reject otherwise).
    await putScenario(closingKey, { closeAfterMs: { afterMs: 1000, code: 1011, reason: "internal error" } });
    const closingLog = new ProviderEventLog();
    const closing = await connectOpenAiRealtime(options(closingLog), sessionConfig(closingKey));
    const { event: closed } = await closingLog.next("closed");
    expect(closed).toEqual({ type: "closed", code: 1011, reason: "internal error" });

    const droppingKey = uniqueKey("openai-drop");
    await putScenario(droppingKey, { dropAfterMessages: 2 }); // session.created, session.updated, then nothing
    const droppingLog = new ProviderEventLog();
    const dropping = await connectOpenAiRealtime(options(droppingLog), sessionConfig(droppingKey));
    const { event: lost } = await droppingLog.next("closed");
    expect(lost.code).toBe(1006);

    // A closed session drops sends instead of throwing, and reports nothing more.
    for (const provider of [closing, dropping]) {
      provider.sendAudio("AAAA");
      provider.sendText("1");
      provider.interrupt("item_gone", 100);
      expect(provider.stats.droppedSends).toBe(3);
      provider.close();
    }
    expect(closingLog.ofType("closed")).toHaveLength(1);
    expect(droppingLog.ofType("closed")).toHaveLength(1);
  });

  it("closes with 1009 when a server message exceeds the bound", async () => {
    const key = uniqueKey("openai-oversized");
    const log = new ProviderEventLog();
    // session.created alone is larger than this.
    const outcome = connectOpenAiRealtime(options(log, { maxInboundMessageChars: 200 }), sessionConfig(key));
    await expect(outcome).rejects.toMatchObject({ name: "ProviderSetupError", code: "closed" });
    await vi.waitFor(async () => expect((await onlyConnection(key)).close).toMatchObject({ code: 1009, by: "client" }));
  });
});
