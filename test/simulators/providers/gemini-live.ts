import type { LiveServerMessage } from "@google/genai";
import { decodeAudio } from "./audio.ts";
import type { ProviderConnection } from "./connection.ts";
import { scheduleFaults } from "./connection.ts";
import type { ConversationProgress } from "./conversation.ts";
import { AgentSpeech, ConversationScript, PlaybackClock, progressiveText } from "./conversation.ts";
import type { ResponseRecord } from "./recorder.ts";
import { headOf, preciseNow } from "./recorder.ts";
import type { ToolCallScript } from "./scenarios.ts";
import type { VadEvent } from "./vad.ts";
import { EnergyVad } from "./vad.ts";
import { decodeBase64, isRecord, parseJsonObject, providerId } from "./wire.ts";

/**
 * Gemini Live BidiGenerateContent over WebSocket, server side. Like the real service it sends
 * its JSON in BINARY frames, closes 1007 on a malformed or out-of-order client message, has no in-band error
 * event, and announces the end of a connection with `goAway` before closing it.
 */

/** The wire shape of a server message (the SDK's class adds convenience getters that are not on the wire). */
type ServerMessage = Omit<LiveServerMessage, "text" | "data">;

const INVALID_ARGUMENT = "Request contains an invalid argument.";
// The reason the service gives when it closes a connection it announced with goAway.
const DEADLINE_EXPIRED = "Deadline expired before operation could complete.";
const OUTPUT_FORMAT = { encoding: "pcm16", sampleRate: 24000 } as const;
const OUTPUT_MIME_TYPE = "audio/pcm;rate=24000";
const MAX_RESUMABLE_SESSIONS = 1000;
const MAX_RECORDED_HANDLES = 100;

/** Conversations by resumption handle, shared by every Gemini connection of one simulator. */
export class ResumptionStore {
  readonly #byHandle = new Map<string, ConversationProgress>();

  issue(progress: ConversationProgress): string {
    const handle = providerId("resume-", 32);
    if (this.#byHandle.size >= MAX_RESUMABLE_SESSIONS) {
      const oldest = this.#byHandle.keys().next().value;
      if (oldest !== undefined) this.#byHandle.delete(oldest);
    }
    this.#byHandle.set(handle, structuredClone(progress));
    return handle;
  }

  resume(handle: string): ConversationProgress | undefined {
    const progress = this.#byHandle.get(handle);
    return progress && structuredClone(progress);
  }
}

interface SetupOptions {
  inputTranscription: boolean;
  outputTranscription: boolean;
  resumable: boolean;
  automaticActivityDetection: boolean;
  interruptions: boolean;
}

interface Generation {
  record: ResponseRecord;
  cancelThinking: () => void;
  speech?: AgentSpeech;
}

export class GeminiLiveSession {
  readonly #connection: ProviderConnection;
  readonly #resumptions: ResumptionStore;
  readonly #playback = new PlaybackClock();
  #script: ConversationScript;
  #options: SetupOptions | null = null;
  #vad: EnergyVad | null = null;
  #silenceMs: number | undefined;
  #inputRate = 16000;
  #speechStartedMs = 0;
  #generation: Generation | null = null;
  #pendingToolCallId: string | null = null;

  constructor(connection: ProviderConnection, resumptions: ResumptionStore) {
    this.#connection = connection;
    this.#resumptions = resumptions;
    this.#script = new ConversationScript(connection.scenario);
  }

  start(): void {
    const connection = this.#connection;
    connection.socket.on("message", (data) => this.#receive(parseJsonObject(data)));
    connection.onEnd(() => this.#generation?.speech?.cancel());
    scheduleFaults(connection, {
      // No error message exists in this protocol: a server-side failure surfaces as a 1011 close.
      errorEvent: (_code, message) => connection.close(1011, message.slice(0, 120)),
      goAway: (timeLeftMs) => {
        this.#send({ goAway: { timeLeft: `${timeLeftMs / 1000}s` } });
        connection.timers.after(timeLeftMs, () => connection.close(1011, DEADLINE_EXPIRED));
      },
    });
  }

  #send(message: ServerMessage): void {
    this.#connection.sendJson(message, Object.keys(message)[0] ?? "unknown", "binary");
  }

  #reject(reason: string): void {
    this.#connection.close(1007, reason);
  }

  #receive(message: Record<string, unknown> | undefined): void {
    const recorder = this.#connection.recorder;
    const type = message ? (Object.keys(message)[0] ?? "empty") : "invalid";
    recorder.clientMessage(type);
    if (!message) return this.#reject("Invalid JSON payload received.");
    if (!this.#options) {
      if (!isRecord(message.setup)) return this.#reject("The first message must be setup.");
      return this.#setup(message.setup);
    }
    if (message.setup !== undefined) return this.#reject("setup may be sent only once.");
    if (isRecord(message.realtimeInput)) return this.#realtimeInput(message.realtimeInput);
    if (isRecord(message.clientContent)) return this.#clientContent(message.clientContent);
    if (isRecord(message.toolResponse)) return this.#toolResponse(message.toolResponse);
    if (isRecord(message.contextUpdate)) return recorder.configUpdates.push(message);
    this.#reject(`Invalid JSON payload received. Unknown name "${type}".`);
  }

  #setup(setup: Record<string, unknown>): void {
    const recorder = this.#connection.recorder;
    recorder.setup = { setup };
    if (typeof setup.model !== "string" || !setup.model) return this.#reject(INVALID_ARGUMENT);
    const inputConfig = isRecord(setup.realtimeInputConfig) ? setup.realtimeInputConfig : {};
    const detection = isRecord(inputConfig.automaticActivityDetection) ? inputConfig.automaticActivityDetection : {};
    const resumption = isRecord(setup.sessionResumption) ? setup.sessionResumption : undefined;
    this.#options = {
      inputTranscription: isRecord(setup.inputAudioTranscription),
      outputTranscription: isRecord(setup.outputAudioTranscription),
      resumable: resumption !== undefined,
      automaticActivityDetection: detection.disabled !== true,
      interruptions: inputConfig.activityHandling !== "NO_INTERRUPTION",
    };
    if (typeof detection.silenceDurationMs === "number") this.#silenceMs = detection.silenceDurationMs;
    if (resumption) {
      const handle = typeof resumption.handle === "string" ? resumption.handle : null;
      const progress = handle ? this.#resumptions.resume(handle) : undefined;
      // An unknown handle starts a fresh conversation; the record says so for the test to assert.
      if (progress) this.#script = new ConversationScript(this.#connection.scenario, progress);
      recorder.resumption = { requestedHandle: handle, known: progress !== undefined, issuedHandles: [] };
    }
    const delay = this.#connection.scenario.setupDelayMs ?? 0;
    if (delay > 0) setTimeout(() => this.#send({ setupComplete: {} }), delay);
    else this.#send({ setupComplete: {} });
  }

  // ── caller input ─────────────────────────────────────────────────────────────────────────────────────────

  #realtimeInput(input: Record<string, unknown>): void {
    const blobs = [input.audio, ...(Array.isArray(input.mediaChunks) ? input.mediaChunks : [])].filter(isRecord);
    for (const blob of blobs) {
      const mimeType = typeof blob.mimeType === "string" ? blob.mimeType : "";
      const rate = /^audio\/pcm(?:;\s*rate=(\d+))?$/.exec(mimeType);
      const bytes = decodeBase64(blob.data);
      if (!rate || !bytes) return this.#reject(`Unsupported realtimeInput audio: mimeType '${mimeType}'.`);
      this.#audio(bytes, rate[1] ? Number(rate[1]) : 16000);
    }
    if (isRecord(input.video)) {
      const mimeType = typeof input.video.mimeType === "string" ? input.video.mimeType : "";
      const bytes = decodeBase64(input.video.data);
      if (!/^image\/(?:jpeg|png)$/.test(mimeType) || !bytes || bytes.byteLength === 0) {
        return this.#reject(`Unsupported realtimeInput video: mimeType '${mimeType}'.`);
      }
      this.#connection.recorder.image(mimeType, bytes);
    }
    if (typeof input.text === "string") {
      this.#connection.recorder.history.push({ realtimeInput: { text: input.text } });
      this.#interrupt();
      this.#respond();
    }
    const manual = this.#options?.automaticActivityDetection === false;
    if (input.audioStreamEnd === true || (manual && isRecord(input.activityEnd))) {
      const stopped = this.#vad?.flush();
      if (stopped) this.#onVad(stopped);
    }
    if (manual && isRecord(input.activityStart)) {
      this.#onVad({ kind: "speech-started", audioMs: this.#vad?.positionMs ?? 0 });
    }
  }

  #audio(bytes: Buffer, sampleRate: number): void {
    this.#connection.recorder.audioFrameIn(bytes);
    if (!this.#vad || sampleRate !== this.#inputRate) {
      this.#inputRate = sampleRate;
      const vad = this.#connection.settings.vad;
      const settings = { ...vad, silenceMs: this.#silenceMs ?? vad.silenceMs };
      this.#vad = new EnergyVad(sampleRate, settings, this.#vad?.positionMs ?? 0);
    }
    const events = this.#vad.push(decodeAudio(bytes, "pcm16"));
    if (this.#options?.automaticActivityDetection) for (const event of events) this.#onVad(event);
  }

  #onVad(event: VadEvent): void {
    if (event.kind === "speech-started") {
      this.#speechStartedMs = event.audioMs;
      if (this.#options?.interruptions) this.#interrupt(event.audioMs);
      return;
    }
    const { turn, transcript } = this.#script.nextCallerTurn();
    this.#connection.recorder.turns.push({
      turn,
      transcript,
      speechStartedAudioMs: this.#speechStartedMs,
      speechStoppedAudioMs: event.audioMs,
      speechStoppedAt: preciseNow(),
    });
    if (this.#options?.inputTranscription) {
      this.#send({ serverContent: { inputTranscription: { text: transcript, finished: true } } });
    }
    this.#respond();
  }

  /** New caller activity cuts off the model: pending output is dropped and the client told to flush playback. */
  #interrupt(audioMs = this.#vad?.positionMs ?? 0): void {
    const agentAudioPlaying = this.#playback.isPlaying;
    const generation = this.#generation;
    if (!generation && !agentAudioPlaying && !this.#pendingToolCallId) return;
    const responseInProgress = generation !== null;
    this.#connection.recorder.bargeIns.push({ at: preciseNow(), audioMs, agentAudioPlaying, responseInProgress });
    if (generation) {
      generation.cancelThinking();
      generation.speech?.cancel();
      generation.record.outcome = "interrupted";
      generation.record.finishedAt = preciseNow();
      this.#generation = null;
    }
    if (this.#pendingToolCallId) {
      this.#send({ toolCallCancellation: { ids: [this.#pendingToolCallId] } });
      this.#pendingToolCallId = null;
    }
    this.#playback.reset();
    this.#send({ serverContent: { interrupted: true } });
    this.#endTurn();
  }

  #clientContent(content: Record<string, unknown>): void {
    const turns = Array.isArray(content.turns) ? content.turns : [];
    for (const turn of turns) this.#connection.recorder.history.push(turn);
    if (content.turnComplete === true) {
      this.#interrupt();
      this.#respond();
    }
  }

  #toolResponse(toolResponse: Record<string, unknown>): void {
    const { functionResponses } = toolResponse;
    const responses = Array.isArray(functionResponses) ? functionResponses.filter(isRecord) : [];
    for (const response of responses) {
      this.#connection.recorder.functionCallOutputs.push({
        id: typeof response.id === "string" ? response.id : "",
        name: typeof response.name === "string" ? response.name : null,
        output: response.response,
        at: preciseNow(),
      });
    }
    if (this.#pendingToolCallId && responses.some((response) => response.id === this.#pendingToolCallId)) {
      this.#pendingToolCallId = null;
      this.#respond();
    }
  }

  // ── model output ─────────────────────────────────────────────────────────────────────────────────────────

  #respond(): void {
    const toolCall = this.#script.takeToolCall();
    const record: ResponseRecord = {
      id: providerId("turn-", 12),
      kind: toolCall ? "tool-call" : "audio",
      turn: this.#script.currentTurn,
      text: toolCall ? toolCall.name : this.#script.nextReply(),
      startedAt: preciseNow(),
      firstAudioAt: null,
      finishedAt: null,
      outcome: "in-progress",
      audioMs: 0,
    };
    this.#connection.recorder.responses.push(record);
    const generation: Generation = { record, cancelThinking: () => {} };
    this.#generation = generation;
    const due = performance.now() + this.#connection.responseDelayMs;
    // The audio is synthesised during the thinking time, so it does not add to the measured latency.
    const output = toolCall ? () => this.#toolCall(generation, toolCall) : this.#prepareSpeech(generation);
    generation.cancelThinking = this.#connection.timers.after(due - performance.now(), output);
  }

  #toolCall(generation: Generation, toolCall: ToolCallScript): void {
    const id = providerId("function-call-", 16);
    this.#pendingToolCallId = id;
    const { name, arguments: args } = toolCall;
    this.#send({ toolCall: { functionCalls: [{ id, name, args }] } });
    this.#connection.recorder.toolCalls.push({ id, name, arguments: args, at: preciseNow() });
    generation.record.outcome = "completed";
    generation.record.finishedAt = preciseNow();
    this.#generation = null;
  }

  #prepareSpeech(generation: Generation): () => void {
    const { settings, timers } = this.#connection;
    const options = { chunkMs: settings.audioChunkMs, speedFactor: settings.speedFactor, timers };
    const speech = new AgentSpeech(generation.record.text, OUTPUT_FORMAT, options);
    return () => this.#speak(generation, speech);
  }

  #speak(generation: Generation, speech: AgentSpeech): void {
    const recorder = this.#connection.recorder;
    const text = generation.record.text;
    generation.speech = speech;
    let transcriptSent = 0;
    speech.start(
      (chunk) => {
        const at = preciseNow();
        generation.record.firstAudioAt ??= at;
        generation.record.audioMs += chunk.durationMs;
        this.#playback.chunkSent(chunk.durationMs);
        const data = Buffer.from(chunk.bytes).toString("base64");
        this.#send({ serverContent: { modelTurn: { parts: [{ inlineData: { mimeType: OUTPUT_MIME_TYPE, data } }] } } });
        const { durationMs } = chunk;
        recorder.audioChunkOut({
          at,
          head: headOf(chunk.bytes),
          bytes: chunk.bytes.byteLength,
          durationMs,
          responseId: generation.record.id,
        });
        const piece = progressiveText(text, chunk.index, chunk.count, transcriptSent);
        if (piece && this.#options?.outputTranscription) {
          this.#send({ serverContent: { outputTranscription: { text: piece } } });
        }
        transcriptSent += piece.length;
      },
      () => {
        generation.record.outcome = "completed";
        generation.record.finishedAt = preciseNow();
        this.#generation = null;
        this.#send({ serverContent: { generationComplete: true } });
        this.#endTurn();
      },
    );
  }

  #endTurn(): void {
    this.#send({ serverContent: { turnComplete: true } });
    const resumption = this.#connection.recorder.resumption;
    if (!this.#options?.resumable || !resumption) return;
    const newHandle = this.#resumptions.issue(this.#script.progress);
    resumption.issuedHandles.push(newHandle);
    if (resumption.issuedHandles.length > MAX_RECORDED_HANDLES) resumption.issuedHandles.shift();
    this.#send({ sessionResumptionUpdate: { newHandle, resumable: true } });
  }
}
