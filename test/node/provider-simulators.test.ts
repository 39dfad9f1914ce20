import { createHash, randomUUID } from "node:crypto";
import type { Deepgram } from "@deepgram/sdk";
import type { LiveClientMessage } from "@google/genai";
import { ActivityHandling, Modality } from "@google/genai";
import type { RealtimeClientEvent } from "openai/resources/realtime/realtime";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { bytesToMs, SPEECH_MS_PER_CHARACTER, speechDurationMs } from "../simulators/providers/audio.ts";
import type { Utterance } from "../simulators/providers/caller-audio.ts";
import { callerUtterance, upsample, wireFrames } from "../simulators/providers/caller-audio.ts";
import type { ConnectionSnapshot, ProviderSimulator, ScenarioInput } from "../simulators/providers/index.ts";
import { startProviderSimulator } from "../simulators/providers/index.ts";
import type { Received } from "../simulators/providers/test-client.ts";
import { ProviderTestClient, UpgradeRefused } from "../simulators/providers/test-client.ts";

/**
 * Drives the three simulated providers with plain `ws` clients speaking each wire protocol and real caller
 * speech, and checks the protocol flow, the scripted scenarios, every fault, and what the control API records.
 * Nothing here asserts on wall-clock durations: only orderings, counts, sizes, and one relation between audio
 * duration and delivery time with a wide margin.
 */

let sim: ProviderSimulator;

beforeAll(async () => {
  sim = await startProviderSimulator({ responseDelayMs: 20, geminiGoAwayGraceMs: 200 });
});

afterAll(async () => {
  await sim.stop();
});

const newKey = () => `test-${randomUUID()}`;
const LONG_REPLY = "Your balance is one hundred and twenty rupees and fifty paise. Is there anything else?";

function scenario(key: string, value: ScenarioInput): string {
  sim.control.setScenario(key, value);
  return key;
}

function only(key: string): ConnectionSnapshot {
  const connections = sim.control.sessions(key);
  expect(connections).toHaveLength(1);
  const [connection] = connections;
  if (!connection) throw new Error("unreachable");
  return connection;
}

/** The `type` of each JSON message among received[from, to). */
function types(client: ProviderTestClient, from = 0, to = Infinity): string[] {
  return client.received.slice(from, to).flatMap((received) => (received.kind === "json" ? [String(received.message.type)] : []));
}

/** JSON messages of one `type`, in order. */
function ofType(client: ProviderTestClient, type: string): Array<Record<string, unknown>> {
  return client.json().filter((message) => message.type === type);
}

/** Each expected entry occurs, in this order (other entries may come between). */
function expectInOrder(actual: string[], expected: string[]): void {
  let from = 0;
  for (const entry of expected) {
    const index = actual.indexOf(entry, from);
    expect(index, `${entry} after position ${from} in ${actual.join(", ")}`).toBeGreaterThanOrEqual(0);
    from = index + 1;
  }
}

function count(values: string[], value: string): number {
  return values.filter((entry) => entry === value).length;
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

// ── OpenAI Realtime ──────────────────────────────────────────────────────────────────────────────────────────

function openAi(key: string, apiKey = sim.apiKeys.openai): Promise<ProviderTestClient> {
  const headers = { Authorization: `Bearer ${apiKey}`, "X-Correlation-ID": key };
  return ProviderTestClient.connect(`${sim.urls.openai}?model=gpt-realtime`, headers);
}

const PCMU_SESSION: RealtimeClientEvent = {
  type: "session.update",
  session: {
    type: "realtime",
    model: "gpt-realtime",
    output_modalities: ["audio"],
    instructions: "You are a helpful bank assistant.",
    audio: {
      input: {
        format: { type: "audio/pcmu" },
        transcription: { model: "gpt-4o-transcribe" },
        turn_detection: {
          type: "server_vad",
          threshold: 0.5,
          prefix_padding_ms: 300,
          silence_duration_ms: 500,
          create_response: true,
          interrupt_response: true,
        },
      },
      output: { format: { type: "audio/pcmu" }, voice: "marin" },
    },
    tools: [{ type: "function", name: "lookup_balance", description: "Account balance", parameters: { type: "object" } }],
    tool_choice: "auto",
  },
};

function sendOpenAi(client: ProviderTestClient, event: RealtimeClientEvent): void {
  client.sendJson(event);
}

/** Streams an utterance as µ-law (or 24 kHz PCM16) `input_audio_buffer.append` events; returns the frame count. */
function speakToOpenAi(client: ProviderTestClient, utterance: Utterance, format: "pcmu" | "pcm" = "pcmu"): number {
  const samples = callerUtterance(utterance);
  const frames = format === "pcmu" ? wireFrames(samples, 8000, "mulaw") : wireFrames(upsample(samples, 3), 24000, "pcm16");
  for (const frame of frames) {
    sendOpenAi(client, { type: "input_audio_buffer.append", audio: frame.toString("base64") });
  }
  return frames.length;
}

async function openAiSession(key: string): Promise<ProviderTestClient> {
  const client = await openAi(key);
  await client.waitForJson("type", "session.created");
  sendOpenAi(client, PCMU_SESSION);
  await client.waitForJson("type", "session.updated");
  return client;
}

/** Sizes of the audio deltas among received[from, to). */
function deltaBytes(client: ProviderTestClient, from: number, to: number): number[] {
  return client.received.slice(from, to).flatMap((received) => {
    if (received.kind !== "json" || received.message.type !== "response.output_audio.delta") return [];
    return [Buffer.from(String(received.message.delta), "base64").byteLength];
  });
}

describe("OpenAI Realtime simulator", () => {
  it("serves a transcription session (?intent=transcription): each utterance transcribed, never answered", async () => {
    const key = scenario(newKey(), { callerTranscripts: ["Let me sort that out for you"] });
    const headers = { Authorization: `Bearer ${sim.apiKeys.openai}`, "X-Correlation-ID": key };
    const client = await ProviderTestClient.connect(`${sim.urls.openai}?intent=transcription`, headers);
    const { message: created } = await client.waitForJson("type", "session.created");
    expect(created.session).toMatchObject({ type: "transcription", object: "realtime.transcription_session" });
    // A realtime update is refused on a transcription connection, as the service does.
    sendOpenAi(client, PCMU_SESSION);
    expect((await client.waitForJson("type", "error")).message.error).toMatchObject({ param: "session.type" });
    const transcription = { model: "gpt-4o-transcribe" };
    sendOpenAi(client, {
      type: "session.update",
      session: {
        type: "transcription",
        audio: { input: { format: { type: "audio/pcm", rate: 24000 }, transcription, turn_detection: { type: "server_vad" } } },
      },
    });
    const { message: updated } = await client.waitForJson("type", "session.updated");
    expect(updated.session).toMatchObject({ type: "transcription", audio: { input: { transcription } } });

    speakToOpenAi(client, "hello", "pcm");
    const { message: completed } = await client.waitForJson("type", "conversation.item.input_audio_transcription.completed");
    expect(completed.transcript).toBe("Let me sort that out for you");
    sendOpenAi(client, { type: "response.create" });
    const refused = await client.waitForJson("type", "error", client.received.length);
    expect(refused.message.error).toMatchObject({ param: "type" });
    expect(types(client).some((type) => type.startsWith("response."))).toBe(false);
    expect(only(key).responses.entries).toHaveLength(0);
    await client.close();
  });

  it("refuses a transcription update on a realtime connection", async () => {
    const client = await openAi(newKey());
    await client.waitForJson("type", "session.created");
    sendOpenAi(client, { type: "session.update", session: { type: "transcription" } });
    const { message } = await client.waitForJson("type", "error");
    expect(message.error).toMatchObject({ code: "invalid_value", param: "session.type" });
    await client.close();
  });

  it("detects one turn per utterance and answers each with chunked audio delivered faster than real time", async () => {
    const key = scenario(newKey(), { callerTranscripts: ["I would like to check my balance"], replies: [LONG_REPLY] });
    const client = await openAi(key);
    const { message: created } = await client.waitForJson("type", "session.created");
    expect(created.session).toMatchObject({
      type: "realtime",
      model: "gpt-realtime",
      audio: { output: { format: { type: "audio/pcm", rate: 24000 } } },
    });
    sendOpenAi(client, PCMU_SESSION);
    const { message: updated } = await client.waitForJson("type", "session.updated");
    expect(updated.session).toMatchObject({
      audio: {
        input: { format: { type: "audio/pcmu" }, turn_detection: { silence_duration_ms: 500 } },
        output: { format: { type: "audio/pcmu" }, voice: "marin" },
      },
    });

    const framesSent = speakToOpenAi(client, "hello");
    const first = await client.waitForJson("type", "response.done");
    const secondFrames = speakToOpenAi(client, "invoice");
    const second = await client.waitForJson("type", "response.done", first.index + 1);
    const all = types(client);

    for (const type of ["speech_started", "speech_stopped", "committed"]) {
      expect(count(all, `input_audio_buffer.${type}`), type).toBe(2);
    }
    expect(count(all, "response.created")).toBe(2);
    expectInOrder(types(client, 0, first.index + 1), [
      "input_audio_buffer.speech_started",
      "input_audio_buffer.speech_stopped",
      "input_audio_buffer.committed",
      "conversation.item.input_audio_transcription.completed",
      "response.created",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_audio.delta",
      "response.output_audio_transcript.delta",
      "response.output_audio.done",
      "response.output_audio_transcript.done",
      "response.output_item.done",
      "response.done",
    ]);
    const started = ofType(client, "input_audio_buffer.speech_started");
    const stopped = ofType(client, "input_audio_buffer.speech_stopped");
    expect(started.map((message) => message.item_id)).toEqual(stopped.map((message) => message.item_id));
    const [start1, start2] = started.map((message) => Number(message.audio_start_ms));
    const [stop1, stop2] = stopped.map((message) => Number(message.audio_end_ms));
    // "Hi there. I would like…" is ~4.2 s of speech, starting within its first half second.
    expect(start1).toBeLessThan(500);
    expect(stop1).toBeGreaterThan((start1 ?? 0) + 3500);
    // Audio time runs on across turns: the second utterance starts after the first one's audio.
    expect(start2).toBeGreaterThan(stop1 ?? Infinity);
    expect(stop2).toBeLessThanOrEqual((framesSent + secondFrames) * 20);
    const callerTranscripts = ofType(client, "conversation.item.input_audio_transcription.completed");
    const heard = callerTranscripts.map((message) => message.transcript);
    expect(heard).toEqual(["I would like to check my balance", "caller turn 2"]);
    const agentTranscripts = ofType(client, "response.output_audio_transcript.done");
    expect(agentTranscripts.map((message) => message.transcript)).toEqual([LONG_REPLY, "agent reply 2"]);
    const assistantMessage = { type: "message", role: "assistant" };
    expect(first.message.response).toMatchObject({ status: "completed", output: [assistantMessage] });
    expect(second.message.response).toMatchObject({ status: "completed" });
    const deltas = ofType(client, "response.output_audio.delta");
    expect(new Set(deltas.map((message) => message.response_id)).size).toBe(2);
    for (const delta of deltas) expect(delta).toMatchObject({ output_index: 0, content_index: 0, item_id: expect.any(String) });

    // The documented chunking: 40 ms of µ-law (320 bytes) per delta, the last one possibly shorter.
    const firstReply = deltaBytes(client, 0, first.index);
    expect(firstReply.slice(0, -1).every((bytes) => bytes === 320)).toBe(true);
    expect(firstReply.at(-1)).toBeLessThanOrEqual(320);
    const replyMs = bytesToMs(sum(firstReply), { encoding: "mulaw", sampleRate: 8000 });
    expect(replyMs).toBe(speechDurationMs(LONG_REPLY));
    expect(replyMs).toBe(LONG_REPLY.length * SPEECH_MS_PER_CHARACTER);
    // Faster than real time: the whole 5 s reply arrived in less time than it takes to play.
    const isDelta = (received: Received) => received.kind === "json" && received.message.type === "response.output_audio.delta";
    const firstDelta = await client.waitFor("first delta", isDelta);
    const lastDelta = client.received.slice(0, first.index).findLastIndex(isDelta);
    const deliveryMs = (client.receivedAt[lastDelta] ?? Infinity) - (client.receivedAt[firstDelta] ?? 0);
    expect(deliveryMs).toBeLessThan(replyMs);

    await client.close();
    const record = only(key);
    expect(record.audioIn.frames).toBe(framesSent + secondFrames);
    expect(record.turns.entries.map((turn) => turn.transcript)).toEqual(heard);
    expect(record.audioOut.chunks).toBe(deltas.length);
  });

  it("truncates within the generated audio, refuses beyond it in the real API's words (24 kHz PCM)", async () => {
    const key = newKey();
    const client = await openAi(key);
    await client.waitForJson("type", "session.created");
    speakToOpenAi(client, "payment", "pcm");
    const { index: doneIndex, message: done } = await client.waitForJson("type", "response.done");
    const chunks = deltaBytes(client, 0, doneIndex);
    // 40 ms of 24 kHz PCM16 per delta.
    expect(chunks.slice(0, -1).every((bytes) => bytes === 1920)).toBe(true);
    const generatedMs = bytesToMs(sum(chunks), { encoding: "pcm16", sampleRate: 24000 });
    const itemId = String((done.response as { output: Array<{ id: string }> }).output[0]?.id);
    const truncate = (audioEndMs: number): RealtimeClientEvent => ({
      type: "conversation.item.truncate",
      item_id: itemId,
      content_index: 0,
      audio_end_ms: audioEndMs,
    });

    sendOpenAi(client, truncate(generatedMs + 1000));
    const { index: errorIndex, message: error } = await client.waitForJson("type", "error", doneIndex);
    expect(String((error.error as { message: string }).message)).toContain("already shorter than");
    const heardMs = Math.floor(generatedMs / 2);
    sendOpenAi(client, truncate(heardMs));
    const { message: truncated } = await client.waitForJson("type", "conversation.item.truncated", errorIndex);
    expect(truncated).toMatchObject({ item_id: itemId, content_index: 0, audio_end_ms: heardMs });
    await client.close();
    expect(only(key).truncations.entries.map(({ accepted, audioEndMs }) => ({ accepted, audioEndMs }))).toEqual([
      { accepted: false, audioEndMs: generatedMs + 1000 },
      { accepted: true, audioEndMs: heardMs },
    ]);
  });

  it("signals barge-in with speech_started while the reply is playing, and cancels the response", async () => {
    const key = scenario(newKey(), { replies: [LONG_REPLY] });
    const client = await openAiSession(key);
    speakToOpenAi(client, "hello");
    const firstDelta = await client.waitForJson("type", "response.output_audio.delta");
    speakToOpenAi(client, "interrupt");
    const bargeIn = await client.waitForJson("type", "input_audio_buffer.speech_started", firstDelta.index);
    const cancelled = await client.waitForJson("type", "response.done", firstDelta.index);
    expect(cancelled.index).toBeGreaterThan(bargeIn.index);
    expect(cancelled.message.response).toMatchObject({
      status: "cancelled",
      status_details: { type: "cancelled", reason: "turn_detected" },
    });
    // The interruption is a turn of its own, answered in full.
    const answered = await client.waitForJson("type", "response.done", cancelled.index + 1);
    expect(answered.message.response).toMatchObject({ status: "completed" });
    await client.close();
    const record = only(key);
    expect(record.bargeIns.entries).toHaveLength(1);
    expect(record.bargeIns.entries[0]).toMatchObject({ agentAudioPlaying: true });
    expect(record.responses.entries.map((response) => response.outcome)).toEqual(["interrupted", "completed"]);
  });

  it("makes the scripted function call and continues after function_call_output + response.create", async () => {
    const key = scenario(newKey(), {
      replies: ["Your balance is 120 rupees."],
      toolCalls: [{ onTurn: 1, name: "lookup_balance", arguments: { account: "ACC-1" } }],
    });
    const client = await openAiSession(key);
    speakToOpenAi(client, "hello");
    const { message: call } = await client.waitForJson("type", "response.function_call_arguments.done");
    expect(call).toMatchObject({ name: "lookup_balance", arguments: JSON.stringify({ account: "ACC-1" }) });
    const argumentDeltas = ofType(client, "response.function_call_arguments.delta");
    expect(argumentDeltas.map((message) => message.delta).join("")).toBe(call.arguments);
    const { index: callDone, message: callResponse } = await client.waitForJson("type", "response.done");
    const callItem = { type: "function_call", call_id: call.call_id };
    expect(callResponse.response).toMatchObject({ status: "completed", output: [callItem] });
    expect(types(client).includes("response.output_audio.delta")).toBe(false);

    const output = (callId: string, result: string): RealtimeClientEvent => ({
      type: "conversation.item.create",
      item: { type: "function_call_output", call_id: callId, output: result },
    });
    sendOpenAi(client, output("call_unknown", "{}"));
    const { message: unknownCall } = await client.waitForJson("type", "error", callDone);
    expect(unknownCall.error).toMatchObject({ type: "invalid_request_error", param: "item.call_id" });
    sendOpenAi(client, output(String(call.call_id), '{"balance":120}'));
    await client.waitForJson("type", "conversation.item.added", callDone);
    sendOpenAi(client, { type: "response.create" });
    const { message: spoken } = await client.waitForJson("type", "response.output_audio_transcript.done", callDone);
    expect(spoken.transcript).toBe("Your balance is 120 rupees.");
    await client.waitForJson("type", "response.done", callDone + 1);
    await client.close();
    const record = only(key);
    expect(record.toolCalls.entries).toMatchObject([{ id: call.call_id, name: "lookup_balance", arguments: { account: "ACC-1" } }]);
    expect(record.functionCallOutputs.entries).toMatchObject([{ id: call.call_id, output: '{"balance":120}' }]);
  });

  it("answers text items, tolerates the beta session shape, and reports client errors as error events", async () => {
    const key = newKey();
    const client = await openAi(key);
    await client.waitForJson("type", "session.created");
    client.sendJson({
      type: "session.update",
      session: {
        input_audio_format: "g711_ulaw",
        output_audio_format: "g711_alaw",
        voice: "verse",
        turn_detection: { type: "server_vad", silence_duration_ms: 400 },
      },
    });
    const { message: updated } = await client.waitForJson("type", "session.updated");
    expect(updated.session).toMatchObject({
      audio: {
        input: { format: { type: "audio/pcmu" }, turn_detection: { silence_duration_ms: 400 } },
        output: { format: { type: "audio/pcma" }, voice: "verse" },
      },
    });
    client.sendRaw("{not json");
    client.sendJson({ type: "conversation.item.explode" });
    sendOpenAi(client, { type: "response.cancel" });
    sendOpenAi(client, { type: "input_audio_buffer.commit" });
    const unsupportedRate = { output: { format: { type: "audio/pcm", rate: 16000 } } };
    client.sendJson({ type: "session.update", session: { type: "realtime", audio: unsupportedRate } });
    const content = [{ type: "input_text" as const, text: "What is my balance?" }];
    sendOpenAi(client, { type: "conversation.item.create", item: { type: "message", role: "user", content } });
    sendOpenAi(client, { type: "response.create" });
    sendOpenAi(client, { type: "response.create" });
    await client.waitForJson("type", "response.done");
    const errors = ofType(client, "error").map((message) => message.error as { code: string; message: string });
    expect(errors.map((error) => error.code)).toEqual([
      "invalid_json",
      "invalid_value",
      "response_cancel_not_active",
      "input_audio_buffer_commit_empty",
      "invalid_value",
      "conversation_already_has_active_response",
    ]);
    expect(errors[2]?.message).toBe("Cancellation failed: no active response found");
    // A-law output, 40 ms (320 bytes) per delta, as the beta-shaped update asked.
    expect(client.json().find((message) => message.type === "response.output_audio.delta")).toSatisfy(
      (delta: Record<string, unknown>) => Buffer.from(String(delta.delta), "base64").byteLength === 320,
    );
    await client.close();
    expect(only(key).history.entries).toMatchObject([{ type: "message", role: "user" }]);
  });
});

/** A small JPEG-signed image and its digest, as a screen frame would carry it. */
function screenImage(fill: number): { base64: string; sha256: string; bytes: number } {
  const bytes = Buffer.alloc(300, fill);
  bytes.set([0xff, 0xd8, 0xff, 0xe0]);
  return { base64: bytes.toString("base64"), sha256: createHash("sha256").update(bytes).digest("hex"), bytes: bytes.byteLength };
}

describe("OpenAI Realtime simulator: images", () => {
  it("records each input_image it is given, deletes an image item on request, and refuses a bad image", async () => {
    const key = newKey();
    const client = await openAiSession(key);
    const [first, second] = [screenImage(1), screenImage(2)];
    for (const [id, image] of [
      ["screen_1", first],
      ["screen_2", second],
    ] as const) {
      const content = [{ type: "input_image" as const, image_url: `data:image/jpeg;base64,${image.base64}` }];
      sendOpenAi(client, { type: "conversation.item.create", item: { id, type: "message", role: "user", content } });
    }
    sendOpenAi(client, { type: "conversation.item.delete", item_id: "screen_1" });
    await client.waitForJson("type", "conversation.item.deleted");
    const bad = [{ type: "input_image" as const, image_url: "data:image/gif;base64,R0lGOD" }];
    sendOpenAi(client, { type: "conversation.item.create", item: { type: "message", role: "user", content: bad } });
    const { message } = await client.waitForJson("type", "error");
    expect((message.error as { code: string }).code).toBe("invalid_value");
    // Images are context: nothing was answered.
    expect(ofType(client, "response.created")).toHaveLength(0);
    await client.close();
    expect(only(key).images.entries).toMatchObject([
      { mimeType: "image/jpeg", bytes: first.bytes, sha256: first.sha256 },
      { mimeType: "image/jpeg", bytes: second.bytes, sha256: second.sha256 },
    ]);
  });
});

// ── Gemini Live ──────────────────────────────────────────────────────────────────────────────────────────────

function gemini(key: string, apiKey = sim.apiKeys.gemini): Promise<ProviderTestClient> {
  const url = `${sim.urls.gemini}?key=${apiKey}`;
  return ProviderTestClient.connect(url, { "X-Correlation-ID": key }, { binaryIsJson: true });
}

function geminiSetup(handle?: string): LiveClientMessage {
  return {
    setup: {
      model: "models/gemini-live-2.5-flash-preview",
      generationConfig: {
        responseModalities: [Modality.AUDIO],
        speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: "Kore" } } },
      },
      systemInstruction: { parts: [{ text: "You are a helpful bank assistant." }] },
      tools: [{ functionDeclarations: [{ name: "lookup_balance", description: "Account balance" }] }],
      realtimeInputConfig: {
        automaticActivityDetection: { disabled: false },
        activityHandling: ActivityHandling.START_OF_ACTIVITY_INTERRUPTS,
      },
      inputAudioTranscription: {},
      outputAudioTranscription: {},
      sessionResumption: handle ? { handle } : {},
    },
  };
}

async function geminiSession(key: string, handle?: string): Promise<ProviderTestClient> {
  const client = await gemini(key);
  client.sendJson(geminiSetup(handle));
  await client.waitForJson("key", "setupComplete");
  return client;
}

function speakToGemini(client: ProviderTestClient, utterance: Utterance): void {
  for (const frame of wireFrames(upsample(callerUtterance(utterance), 2), 16000, "pcm16")) {
    const audio = { data: frame.toString("base64"), mimeType: "audio/pcm;rate=16000" };
    client.sendJson({ realtimeInput: { audio } } satisfies LiveClientMessage);
  }
}

interface ServerContent {
  modelTurn?: { parts: Array<{ inlineData: { mimeType: string; data: string } }> };
  inputTranscription?: { text: string };
  outputTranscription?: { text: string };
  interrupted?: boolean;
  generationComplete?: boolean;
  turnComplete?: boolean;
}

function serverContent(received: Received | undefined): ServerContent | undefined {
  return received?.kind === "json" ? (received.message.serverContent as ServerContent | undefined) : undefined;
}

/** The `serverContent` messages among received[from, to). */
function serverContents(client: ProviderTestClient, from: number, to: number): ServerContent[] {
  return client.received.slice(from, to).flatMap((received) => serverContent(received) ?? []);
}

function waitForServerContent(client: ProviderTestClient, field: keyof ServerContent, from = 0): Promise<number> {
  return client.waitFor(`serverContent.${field}`, (received) => serverContent(received)?.[field] !== undefined, from);
}

function outputTranscript(contents: ServerContent[]): string {
  return contents.map((content) => content.outputTranscription?.text ?? "").join("");
}

function inputTranscript(contents: ServerContent[]): string {
  return contents.map((content) => content.inputTranscription?.text ?? "").join("");
}

describe("Gemini Live simulator", () => {
  it("runs a turn in binary JSON frames with transcriptions, then resumes the conversation by handle", async () => {
    const key = scenario(newKey(), { callerTranscripts: ["Check my balance"], replies: [LONG_REPLY] });
    const client = await gemini(key);
    client.sendJson(geminiSetup());
    const { index: setupIndex } = await client.waitForJson("key", "setupComplete");
    expect(client.received[setupIndex]).toMatchObject({ kind: "json", binaryFrame: true, message: { setupComplete: {} } });

    speakToGemini(client, "hello");
    const turnComplete = await waitForServerContent(client, "turnComplete");
    const update = await client.waitForJson("key", "sessionResumptionUpdate", turnComplete);
    const contents = serverContents(client, 0, turnComplete + 1);
    const order = contents.map((content) => Object.keys(content)[0] ?? "");
    expectInOrder(order, ["inputTranscription", "modelTurn", "outputTranscription", "generationComplete", "turnComplete"]);
    expect(inputTranscript(contents)).toBe("Check my balance");
    expect(outputTranscript(contents)).toBe(LONG_REPLY);
    const parts = contents.flatMap((content) => content.modelTurn?.parts ?? []);
    expect(new Set(parts.map((part) => part.inlineData.mimeType))).toEqual(new Set(["audio/pcm;rate=24000"]));
    const sizes = parts.map((part) => Buffer.from(part.inlineData.data, "base64").byteLength);
    expect(sizes.slice(0, -1).every((bytes) => bytes === 1920)).toBe(true);
    expect(bytesToMs(sum(sizes), { encoding: "pcm16", sampleRate: 24000 })).toBe(speechDurationMs(LONG_REPLY));
    const resumption = update.message.sessionResumptionUpdate as { newHandle: string; resumable: boolean };
    expect(resumption.resumable).toBe(true);
    expect(update.index).toBeGreaterThan(turnComplete);
    await client.close();

    const resumed = await geminiSession(key, resumption.newHandle);
    speakToGemini(resumed, "invoice");
    const resumedTurn = await waitForServerContent(resumed, "turnComplete");
    const resumedContents = serverContents(resumed, 0, resumedTurn);
    // The conversation continues: second caller turn, second agent reply.
    expect(inputTranscript(resumedContents)).toBe("caller turn 2");
    expect(outputTranscript(resumedContents)).toBe("agent reply 2");
    await resumed.close();
    const [first, second] = sim.control.sessions(key);
    expect(first?.resumption).toMatchObject({ requestedHandle: null, known: false, issuedHandles: [resumption.newHandle] });
    expect(second?.resumption).toMatchObject({ requestedHandle: resumption.newHandle, known: true });
    expect(second?.setup).toMatchObject({ setup: { sessionResumption: { handle: resumption.newHandle } } });
  });

  it("closes with 1007 when the first message is not setup, or a message is malformed", async () => {
    const notSetup = await gemini(newKey());
    notSetup.sendJson({ realtimeInput: { text: "hello" } } satisfies LiveClientMessage);
    expect((await notSetup.closed).code).toBe(1007);
    const malformed = await geminiSession(newKey());
    malformed.sendRaw("{not json");
    expect((await malformed.closed).code).toBe(1007);
    const secondSetup = await geminiSession(newKey());
    secondSetup.sendJson(geminiSetup());
    expect((await secondSetup.closed).code).toBe(1007);
  });

  it("round-trips a scripted tool call and interrupts the reply when the caller barges in", async () => {
    const toolCalls = [{ onTurn: 1, name: "lookup_balance", arguments: { account: "ACC-1" } }];
    const key = scenario(newKey(), { replies: [LONG_REPLY], toolCalls });
    const client = await geminiSession(key);
    speakToGemini(client, "hello");
    const { index: callIndex, message: call } = await client.waitForJson("key", "toolCall");
    const { functionCalls } = call.toolCall as { functionCalls: Array<{ id: string; name: string; args: unknown }> };
    expect(functionCalls).toMatchObject([{ name: "lookup_balance", args: { account: "ACC-1" } }]);
    const id = functionCalls[0]?.id;
    const response = { id, name: "lookup_balance", response: { output: { balance: 120 } } };
    client.sendJson({ toolResponse: { functionResponses: [response] } } satisfies LiveClientMessage);
    const firstAudio = await waitForServerContent(client, "modelTurn", callIndex);
    speakToGemini(client, "interrupt");
    const interrupted = await waitForServerContent(client, "interrupted", firstAudio);
    // The interrupted turn ends without generationComplete; the interruption then gets its own answer.
    const answered = await waitForServerContent(client, "generationComplete", interrupted);
    expect(serverContents(client, firstAudio, interrupted).some((content) => content.generationComplete)).toBe(false);
    expect(answered).toBeGreaterThan(interrupted);
    await client.close();
    const record = only(key);
    expect(record.functionCallOutputs.entries).toMatchObject([{ id, name: "lookup_balance", output: response.response }]);
    expect(record.bargeIns.entries[0]).toMatchObject({ agentAudioPlaying: true });
  });

  it("records clientContent history and answers it when the turn is complete", async () => {
    const key = newKey();
    const client = await geminiSession(key);
    const history = [
      { role: "user", parts: [{ text: "I want to pay an invoice." }] },
      { role: "model", parts: [{ text: "Which invoice?" }] },
    ];
    const question = { role: "user", parts: [{ text: "Number 42." }] };
    client.sendJson({ clientContent: { turns: history, turnComplete: false } } satisfies LiveClientMessage);
    client.sendJson({ clientContent: { turns: [question], turnComplete: true } } satisfies LiveClientMessage);
    const turnComplete = await waitForServerContent(client, "turnComplete");
    expect(outputTranscript(serverContents(client, 0, turnComplete))).toBe("agent reply 1");
    await client.close();
    expect(only(key).history.entries).toEqual([...history, question]);
  });

  it("records video frames as images, and closes 1007 on a video frame that is not an image", async () => {
    const key = newKey();
    const client = await geminiSession(key);
    const image = screenImage(3);
    client.sendJson({ realtimeInput: { video: { data: image.base64, mimeType: "image/jpeg" } } } satisfies LiveClientMessage);
    client.sendJson({ realtimeInput: { video: { data: image.base64, mimeType: "video/mp4" } } } satisfies LiveClientMessage);
    expect((await client.closed).code).toBe(1007);
    expect(only(key).images.entries).toMatchObject([{ mimeType: "image/jpeg", bytes: image.bytes, sha256: image.sha256 }]);
  });

  it("sends goAway with the time left, then closes when it is up", async () => {
    const client = await geminiSession(scenario(newKey(), { goAwayAfterMs: 0 }));
    const { message } = await client.waitForJson("key", "goAway");
    expect(message.goAway).toEqual({ timeLeft: "0.2s" });
    expect(await client.closed).toEqual({ code: 1011, reason: "Deadline expired before operation could complete." });
  });
});

// ── Deepgram Voice Agent ─────────────────────────────────────────────────────────────────────────────────────

function deepgram(key: string, target = sim, apiKey = target.apiKeys.deepgram): Promise<ProviderTestClient> {
  return ProviderTestClient.connect(target.urls.deepgram, { Authorization: `Token ${apiKey}`, "X-Correlation-ID": key });
}

function deepgramSettings(greeting?: string): Deepgram.agent.AgentV1Settings {
  return {
    type: "Settings",
    audio: {
      input: { encoding: "mulaw", sample_rate: 8000 },
      output: { encoding: "mulaw", sample_rate: 8000, container: "none" },
    },
    agent: {
      language: "en",
      listen: { provider: { version: "v1", type: "deepgram", model: "nova-3" } },
      think: { provider: { type: "open_ai", model: "gpt-4o-mini" }, prompt: "You are a helpful bank assistant." },
      speak: { provider: { type: "deepgram", model: "aura-2-thalia-en" } },
      ...(greeting ? { greeting } : {}),
    },
  };
}

async function deepgramSession(key: string, greeting?: string, target = sim): Promise<ProviderTestClient> {
  const client = await deepgram(key, target);
  await client.waitForJson("type", "Welcome");
  client.sendJson(deepgramSettings(greeting));
  await client.waitForJson("type", "SettingsApplied");
  return client;
}

function speakToDeepgram(client: ProviderTestClient, utterance: Utterance): number {
  const frames = wireFrames(callerUtterance(utterance), 8000, "mulaw");
  for (const frame of frames) client.sendRaw(frame);
  return frames.length;
}

function audioSizes(client: ProviderTestClient, from: number, to: number): number[] {
  return client.received.slice(from, to).flatMap((received) => (received.kind === "audio" ? received.bytes.byteLength : []));
}

function conversationTexts(client: ProviderTestClient): Array<{ role: unknown; content: unknown }> {
  return ofType(client, "ConversationText").map(({ role, content }) => ({ role, content }));
}

describe("Deepgram Voice Agent simulator", () => {
  it("runs turns from Settings to AgentAudioDone with binary audio in the Settings' encoding", async () => {
    const key = scenario(newKey(), { callerTranscripts: ["Check my balance"] });
    const client = await deepgramSession(key);
    const firstFrames = speakToDeepgram(client, "hello");
    const first = await client.waitForJson("type", "AgentAudioDone");
    const secondFrames = speakToDeepgram(client, "goodbye");
    await client.waitForJson("type", "AgentAudioDone", first.index + 1);
    expectInOrder(types(client, 0, first.index + 1), [
      "Welcome",
      "SettingsApplied",
      "UserStartedSpeaking",
      "ConversationText",
      "AgentThinking",
      "AgentStartedSpeaking",
      "ConversationText",
      "AgentAudioDone",
    ]);
    expect(count(types(client), "UserStartedSpeaking")).toBe(2);
    expect(conversationTexts(client)).toEqual([
      { role: "user", content: "Check my balance" },
      { role: "assistant", content: "agent reply 1" },
      { role: "user", content: "caller turn 2" },
      { role: "assistant", content: "agent reply 2" },
    ]);
    const started = await client.waitForJson("type", "AgentStartedSpeaking");
    for (const field of ["total_latency", "tts_latency", "ttt_latency"]) {
      expect(started.message[field]).toBeTypeOf("number");
    }
    const sizes = audioSizes(client, started.index, first.index);
    expect(sizes.slice(0, -1).every((bytes) => bytes === 320)).toBe(true);
    expect(bytesToMs(sum(sizes), { encoding: "mulaw", sampleRate: 8000 })).toBe(speechDurationMs("agent reply 1"));
    await client.close();
    expect(only(key).audioIn.frames).toBe(firstFrames + secondFrames);
  });

  it("round-trips a client-side function call", async () => {
    const toolCalls = [{ onTurn: 1, name: "create_invoice", arguments: { customer: "Rahul" } }];
    const key = scenario(newKey(), { replies: ["Done."], toolCalls });
    const client = await deepgramSession(key);
    speakToDeepgram(client, "invoice");
    const { index, message } = await client.waitForJson("type", "FunctionCallRequest");
    const [request] = message.functions as Deepgram.agent.AgentV1FunctionCallRequest.Functions.Item[];
    expect(request).toMatchObject({ name: "create_invoice", client_side: true });
    expect(JSON.parse(request?.arguments ?? "")).toEqual({ customer: "Rahul" });
    const id = request?.id;
    const content = '{"invoice":"INV-1"}';
    client.sendJson({ type: "FunctionCallResponse", id, name: "create_invoice", content } satisfies FunctionCallResponse);
    const done = await client.waitForJson("type", "AgentAudioDone", index);
    expectInOrder(types(client, index, done.index), ["AgentStartedSpeaking", "ConversationText"]);
    const said = conversationTexts(client).filter((text) => text.role === "assistant");
    expect(said).toEqual([{ role: "assistant", content: "Done." }]);
    await client.close();
    expect(only(key).functionCallOutputs.entries).toMatchObject([{ id, name: "create_invoice", output: content }]);
  });

  it("signals barge-in with UserStartedSpeaking while agent audio plays, and stops that reply", async () => {
    const key = scenario(newKey(), { replies: [LONG_REPLY] });
    const client = await deepgramSession(key);
    speakToDeepgram(client, "hello");
    const firstAudio = await client.waitFor("agent audio", (received) => received.kind === "audio");
    speakToDeepgram(client, "interrupt");
    const bargeIn = await client.waitForJson("type", "UserStartedSpeaking", firstAudio);
    const nextDone = await client.waitForJson("type", "AgentAudioDone", bargeIn.index);
    // The interrupted reply never finished: the only AgentAudioDone answers the interruption.
    expect(types(client, 0, nextDone.index).includes("AgentAudioDone")).toBe(false);
    await client.close();
    const record = only(key);
    expect(record.bargeIns.entries[0]).toMatchObject({ agentAudioPlaying: true });
    expect(record.responses.entries.map((response) => response.outcome)).toEqual(["interrupted", "completed"]);
  });

  it("speaks the greeting; takes KeepAlive, prompt updates and injections; reports bad messages as Error", async () => {
    const key = newKey();
    const greeting = "Hello, thanks for calling. How can I help?";
    const client = await deepgramSession(key, greeting);
    client.sendJson({ type: "InjectAgentMessage", message: "Are you still there?" } satisfies InjectAgentMessage);
    await client.waitForJson("type", "InjectionRefused");
    client.sendJson({ type: "KeepAlive" } satisfies Deepgram.agent.AgentV1KeepAlive);
    client.sendJson({ type: "UpdatePrompt", prompt: "Be brief." } satisfies Deepgram.agent.AgentV1UpdatePrompt);
    await client.waitForJson("type", "PromptUpdated");
    client.sendRaw("{not json");
    client.sendJson({ type: "Explode" });
    const greetingDone = await client.waitForJson("type", "AgentAudioDone");
    client.sendJson({ type: "InjectUserMessage", content: "What is my balance?" } satisfies InjectUserMessage);
    await client.waitForJson("type", "AgentAudioDone", greetingDone.index + 1);
    const errors = ofType(client, "Error").map((error) => error.code);
    expect(errors).toEqual(["UNPARSABLE_CLIENT_MESSAGE", "UNPARSABLE_CLIENT_MESSAGE"]);
    expect(conversationTexts(client)).toEqual([
      { role: "assistant", content: greeting },
      { role: "user", content: "What is my balance?" },
      { role: "assistant", content: "agent reply 1" },
    ]);
    await client.close();
    const record = only(key);
    expect(record.clientMessageCounts).toMatchObject({
      Settings: 1,
      KeepAlive: 1,
      UpdatePrompt: 1,
      InjectAgentMessage: 1,
      InjectUserMessage: 1,
    });
    expect(record.setup).toMatchObject({ type: "Settings", agent: { greeting } });
  });

  it("speaks an injected agent message when nobody is talking, and refuses audio before Settings", async () => {
    const client = await deepgram(newKey());
    await client.waitForJson("type", "Welcome");
    client.sendRaw(Buffer.alloc(160, 0xff));
    const { message: error } = await client.waitForJson("type", "Error");
    expect(error.code).toBe("SETTINGS_REQUIRED");
    client.sendJson(deepgramSettings());
    await client.waitForJson("type", "SettingsApplied");
    client.sendJson({ type: "InjectAgentMessage", message: "One moment please." } satisfies InjectAgentMessage);
    const done = await client.waitForJson("type", "AgentAudioDone");
    expect(conversationTexts(client)).toEqual([{ role: "assistant", content: "One moment please." }]);
    expect(audioSizes(client, 0, done.index).length).toBeGreaterThan(0);
    await client.close();
  });
});

type FunctionCallResponse = Deepgram.agent.AgentV1SendFunctionCallResponse;
type InjectAgentMessage = Deepgram.agent.AgentV1InjectAgentMessage;
type InjectUserMessage = Deepgram.agent.AgentV1InjectUserMessage;

// ── Faults and the control API ───────────────────────────────────────────────────────────────────────────────

/** The refusal of an upgrade that must be refused. */
async function refusal(connect: Promise<ProviderTestClient>): Promise<UpgradeRefused> {
  const outcome = await connect.then(
    async (client) => {
      await client.close();
      return new Error("the upgrade was accepted");
    },
    (error: unknown) => error,
  );
  if (!(outcome instanceof UpgradeRefused)) throw outcome;
  return outcome;
}

describe("fault injection", () => {
  it("refuses a wrong or missing API key with 401 on every provider", async () => {
    const key = newKey();
    expect((await refusal(openAi(key, "sk-wrong"))).status).toBe(401);
    expect((await refusal(gemini(key, "wrong"))).status).toBe(401);
    const withoutKey = ProviderTestClient.connect(sim.urls.deepgram, { "X-Correlation-ID": key });
    expect((await refusal(withoutKey)).status).toBe(401);
    expect(sim.control.sessions(key).map((record) => [record.provider, record.refusedWithStatus])).toEqual([
      ["openai", 401],
      ["gemini", 401],
      ["deepgram", 401],
    ]);
  });

  it.each([401, 429, 503] as const)("refuses upgrades with %i in each provider's error format", async (status) => {
    const key = scenario(newKey(), { refuseUpgrade: status });
    const openAiRefusal = await refusal(openAi(key));
    expect(openAiRefusal.status).toBe(status);
    expect(JSON.parse(openAiRefusal.body)).toMatchObject({ error: { message: expect.any(String), code: expect.any(String) } });
    const geminiRefusal = await refusal(gemini(key));
    expect(JSON.parse(geminiRefusal.body)).toMatchObject({ error: { code: status, status: expect.any(String) } });
    const deepgramRefusal = await refusal(deepgram(key));
    expect(JSON.parse(deepgramRefusal.body)).toMatchObject({ err_code: expect.any(String), err_msg: expect.any(String) });
  });

  it("refuses only the next N upgrades with connectionsToRefuse, then accepts", async () => {
    const key = scenario(newKey(), { connectionsToRefuse: 2, refuseUpgrade: 503 });
    expect((await refusal(openAi(key))).status).toBe(503);
    expect((await refusal(gemini(key))).status).toBe(503);
    const client = await openAi(key);
    await client.waitForJson("type", "session.created");
    await client.close();
    expect(sim.control.sessions(key).map((record) => record.refusedWithStatus)).toEqual([503, 503, null]);
  });

  it("drops the TCP connection without a close frame after N messages or after a delay", async () => {
    const afterMessages = await openAi(scenario(newKey(), { dropAfterMessages: 1 }));
    expect((await afterMessages.closed).code).toBe(1006);
    expect(types(afterMessages)).toEqual(["session.created"]);
    const afterDelay = await deepgram(scenario(newKey(), { dropAfterMs: 30 }));
    expect((await afterDelay.closed).code).toBe(1006);
  });

  it("closes with the scenario's code and reason", async () => {
    const internal = { afterMs: 0, code: 1011, reason: "injected internal error" };
    const openAiClose = await openAi(scenario(newKey(), { closeAfterMs: internal }));
    expect(await openAiClose.closed).toEqual({ code: 1011, reason: "injected internal error" });
    const invalid = { afterMs: 10, code: 1007, reason: "injected invalid argument" };
    const geminiClose = await gemini(scenario(newKey(), { closeAfterMs: invalid }));
    expect(await geminiClose.closed).toEqual({ code: 1007, reason: "injected invalid argument" });
  });

  it("stalls: after N messages the simulator sends nothing more, though it keeps reading", async () => {
    const key = scenario(newKey(), { stallAfterMessages: 1 });
    const client = await openAi(key);
    await client.waitForJson("type", "session.created");
    sendOpenAi(client, PCMU_SESSION);
    await vi.waitFor(() => expect(only(key).suppressedMessages).toBeGreaterThan(0));
    expect(types(client)).toEqual(["session.created"]);
    expect(only(key).clientMessageCounts).toEqual({ "session.update": 1 });
    await client.close();
  });

  it("sends the provider's in-band error (Gemini has none: it closes 1011)", async () => {
    const errorEventAfterMs = { afterMs: 0, code: "server_error", message: "The server had an error." };
    const openAiClient = await openAi(scenario(newKey(), { errorEventAfterMs }));
    const { message } = await openAiClient.waitForJson("type", "error");
    expect(message.error).toEqual({ type: "server_error", code: "server_error", message: "The server had an error." });
    await openAiClient.close();
    const deepgramClient = await deepgram(scenario(newKey(), { errorEventAfterMs }));
    const { message: error } = await deepgramClient.waitForJson("type", "Error");
    expect(error).toEqual({ type: "Error", code: "server_error", description: "The server had an error." });
    await deepgramClient.close();
    const geminiClient = await gemini(scenario(newKey(), { errorEventAfterMs }));
    expect(await geminiClient.closed).toEqual({ code: 1011, reason: "The server had an error." });
  });

  it("closes 1009 on an oversized message, and Deepgram closes idle connections", async () => {
    const strict = await startProviderSimulator({ maxMessageBytes: 64 * 1024, deepgramIdleTimeoutMs: 100 });
    try {
      const headers = { Authorization: `Bearer ${strict.apiKeys.openai}` };
      const oversized = await ProviderTestClient.connect(`${strict.urls.openai}?model=gpt-realtime`, headers);
      oversized.sendJson({ type: "input_audio_buffer.append", audio: "A".repeat(100 * 1024) });
      expect((await oversized.closed).code).toBe(1009);
      const idle = await deepgramSession("idle", undefined, strict);
      const { message } = await idle.waitForJson("type", "Error");
      expect(message.code).toBe("CLIENT_MESSAGE_TIMEOUT");
      expect((await idle.closed).code).toBe(1011);
    } finally {
      await strict.stop();
    }
  });
});

describe("control API", () => {
  const control = (path: string, init?: RequestInit) => fetch(`${sim.baseHttpUrl}/__sim/${path}`, init);

  it("stores, returns and deletes scenarios over HTTP, rejecting invalid ones", async () => {
    const key = newKey();
    const invalid = await control(`scenarios/${key}`, { method: "PUT", body: JSON.stringify({ refuseUpgrade: 418 }) });
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ error: expect.stringContaining("refuseUpgrade") });
    expect((await control(`scenarios/${key}`, { method: "PUT", body: "{" })).status).toBe(400);
    const stored = { replies: ["Hello."], toolCalls: [{ onTurn: 2, name: "transfer", arguments: { to: "agent" } }] };
    expect((await control(`scenarios/${key}`, { method: "PUT", body: JSON.stringify(stored) })).status).toBe(204);
    expect(await (await control(`scenarios/${key}`)).json()).toEqual(stored);
    expect((await control(`scenarios/${key}`, { method: "DELETE" })).status).toBe(204);
    expect((await control(`scenarios/${key}`)).status).toBe(404);
    expect((await control("nowhere")).status).toBe(404);
  });

  it("reports each connection's setup, message order, audio timing and turns, without the API key", async () => {
    const key = scenario(newKey(), { callerTranscripts: ["Add a payment"] });
    const client = await openAiSession(key);
    const framesSent = speakToOpenAi(client, "payment");
    const { index: doneIndex } = await client.waitForJson("type", "response.done");
    const deltasReceived = deltaBytes(client, 0, doneIndex).length;
    await client.close();

    const response = await control(`sessions/${encodeURIComponent(key)}`);
    const text = await response.text();
    expect(text).not.toContain(sim.apiKeys.openai);
    const { connections } = JSON.parse(text) as { connections: ConnectionSnapshot[] };
    expect(connections).toHaveLength(1);
    const [record] = connections;
    expect(record).toMatchObject({
      provider: "openai",
      path: "/v1/realtime",
      query: { model: "gpt-realtime" },
      headers: { "x-correlation-id": key, authorization: "Bearer [redacted]" },
      refusedWithStatus: null,
      setup: { type: "session.update", session: { audio: { input: { format: { type: "audio/pcmu" } } } } },
      close: { code: 1000, by: "client" },
    });
    const clientTypes = record?.clientMessages.entries.map((entry) => entry.type) ?? [];
    expect(clientTypes).toEqual(["session.update", ...Array<string>(framesSent).fill("input_audio_buffer.append")]);
    const frameTimes = record?.audioIn.frameTimes.entries ?? [];
    expect(record?.audioIn.frames).toBe(framesSent);
    expect(frameTimes).toHaveLength(framesSent);
    expect(frameTimes.every((at, index) => index === 0 || at >= (frameTimes[index - 1] ?? 0))).toBe(true);
    const chunkTimes = record?.audioOut.chunkTimes.entries ?? [];
    expect(chunkTimes).toHaveLength(deltasReceived);
    const [turn] = record?.turns.entries ?? [];
    const [reply] = record?.responses.entries ?? [];
    expect(turn).toMatchObject({ turn: 1, transcript: "Add a payment" });
    // The benchmark's latency chain: caller audio in → end of speech detected → first agent audio out.
    expect(turn?.speechStoppedAt).toBeGreaterThan(frameTimes[0] ?? Infinity);
    expect(reply?.firstAudioAt).toBeGreaterThanOrEqual(turn?.speechStoppedAt ?? Infinity);
    expect(chunkTimes[0]?.at).toBe(reply?.firstAudioAt);
    expect((await control(`sessions/${encodeURIComponent(key)}`, { method: "DELETE" })).status).toBe(204);
    expect(sim.control.sessions(key)).toEqual([]);
  });
});

describe("global setup", () => {
  it("provides the provider settings to the Worker, pointing at a live simulator", async () => {
    const settings = inject("simulators");
    const names = ["OPENAI_REALTIME_URL", "OPENAI_API_KEY", "GEMINI_LIVE_URL", "GEMINI_API_KEY"];
    for (const name of [...names, "DEEPGRAM_AGENT_URL", "DEEPGRAM_API_KEY", "PROVIDER_SIM_CONTROL_URL"]) {
      expect(settings[name], name).toBeTypeOf("string");
    }
    const headers = { Authorization: `Bearer ${settings.OPENAI_API_KEY}` };
    const client = await ProviderTestClient.connect(`${settings.OPENAI_REALTIME_URL}?model=gpt-realtime`, headers);
    await client.waitForJson("type", "session.created");
    await client.close();
    const sessions = await fetch(`${settings.PROVIDER_SIM_CONTROL_URL}/__sim/sessions/default`);
    expect(sessions.status).toBe(200);
  });
});

describe("control API: caller audio", () => {
  const audio = (path: string, init?: RequestInit) => fetch(`${sim.baseHttpUrl}/__sim/audio/${path}`, init);
  const bytesOf = async (response: Response) => Buffer.from(await response.arrayBuffer());

  it("serves a recording, with its trailing silence, in each encoding and rate a provider takes", async () => {
    const samples = callerUtterance("payment");
    const pcmu = await audio("payment?encoding=pcmu&rate=8000");
    expect(pcmu.status).toBe(200);
    expect(pcmu.headers.get("content-type")).toBe("application/octet-stream");
    const pcmuBytes = await bytesOf(pcmu);
    expect(pcmuBytes).toEqual(Buffer.concat(wireFrames(samples, 8000, "mulaw")));
    const pcmaBytes = await bytesOf(await audio("payment?encoding=pcma&rate=8000"));
    expect(pcmaBytes).toEqual(Buffer.concat(wireFrames(samples, 8000, "alaw")));
    expect(pcmaBytes.equals(pcmuBytes)).toBe(false);
    for (const [rate, factor] of [
      ["8000", 1],
      ["16000", 2],
      ["24000", 3],
    ] as const) {
      const pcm = await bytesOf(await audio(`payment?encoding=pcm16&rate=${rate}`));
      expect(pcm.byteLength, rate).toBe(samples.length * factor * 2);
      const expected = factor === 1 ? samples : upsample(samples, factor);
      expect(pcm.equals(Buffer.concat(wireFrames(expected, Number(rate), "pcm16"))), rate).toBe(true);
    }
    // The last second is silence, so a provider's VAD ends the turn.
    const pcm8k = await bytesOf(await audio("payment?encoding=pcm16&rate=8000"));
    expect(pcm8k.subarray(-16000).every((byte) => byte === 0)).toBe(true);
    expect(pcm8k.subarray(0, -16000).some((byte) => byte !== 0)).toBe(true);
  });

  it("is speech the simulated VAD hears as exactly one turn", async () => {
    const key = newKey();
    const client = await openAiSession(key);
    const bytes = await bytesOf(await audio("goodbye?encoding=pcmu&rate=8000"));
    for (let offset = 0; offset < bytes.byteLength; offset += 160) {
      const frame = bytes.subarray(offset, offset + 160).toString("base64");
      sendOpenAi(client, { type: "input_audio_buffer.append", audio: frame });
    }
    await client.waitForJson("type", "input_audio_buffer.speech_stopped");
    await client.close();
    expect(only(key).turns.entries).toHaveLength(1);
  });

  it("refuses unknown recordings, unsupported encodings and rates, and other methods", async () => {
    expect((await audio("nonsense?encoding=pcmu&rate=8000")).status).toBe(404);
    expect((await audio("hello?encoding=pcmu&rate=16000")).status).toBe(400);
    expect((await audio("hello?encoding=opus&rate=8000")).status).toBe(400);
    expect((await audio("hello?encoding=pcm16&rate=44100")).status).toBe(400);
    expect((await audio("hello", { method: "PUT", body: "x" })).status).toBe(405);
  });
});

describe("OpenAI Realtime simulator: voices", () => {
  it("refuses a session.update naming a voice the service does not have, as an invalid_value error", async () => {
    const client = await openAi(newKey());
    await client.waitForJson("type", "session.created");
    sendOpenAi(client, { type: "session.update", session: { type: "realtime", audio: { output: { voice: "robot" } } } });
    const { message } = await client.waitForJson("type", "error");
    expect(message.error).toMatchObject({ code: "invalid_value", message: expect.stringContaining("'robot'") });
    sendOpenAi(client, { type: "session.update", session: { type: "realtime", audio: { output: { voice: "cedar" } } } });
    const { message: updated } = await client.waitForJson("type", "session.updated");
    expect(updated.session).toMatchObject({ audio: { output: { voice: "cedar" } } });
    await client.close();
  });
});
