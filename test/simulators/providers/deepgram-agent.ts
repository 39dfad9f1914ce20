import type { Deepgram } from "@deepgram/sdk";
import type { AudioFormat, SampleEncoding } from "./audio.ts";
import { decodeAudio } from "./audio.ts";
import type { ProviderConnection } from "./connection.ts";
import { scheduleFaults } from "./connection.ts";
import { AgentSpeech, ConversationScript, PlaybackClock } from "./conversation.ts";
import type { ResponseRecord } from "./recorder.ts";
import { headOf, preciseNow } from "./recorder.ts";
import type { ToolCallScript } from "./scenarios.ts";
import type { VadEvent } from "./vad.ts";
import { EnergyVad } from "./vad.ts";
import { isRecord, parseJsonObject, providerId, rawDataBytes } from "./wire.ts";

/**
 * Deepgram Voice Agent (`/v1/agent/converse`), server side: JSON control messages as text
 * frames, audio both ways as raw binary frames in the encodings `Settings` chose. Message shapes are the
 * @deepgram/sdk agent types. Error codes other than UNPARSABLE_CLIENT_MESSAGE and CLIENT_MESSAGE_TIMEOUT are the
 * simulator's own (UNVERIFIED against the service), as is the 1011 close after the idle timeout.
 */

type ServerMessage =
  | Deepgram.agent.AgentV1Welcome
  | Deepgram.agent.AgentV1SettingsApplied
  | Deepgram.agent.AgentV1ConversationText
  | Deepgram.agent.AgentV1UserStartedSpeaking
  | Deepgram.agent.AgentV1AgentThinking
  | Deepgram.agent.AgentV1FunctionCallRequest
  | Deepgram.agent.AgentV1AgentStartedSpeaking
  | Deepgram.agent.AgentV1AgentAudioDone
  | Deepgram.agent.AgentV1PromptUpdated
  | Deepgram.agent.AgentV1SpeakUpdated
  | Deepgram.agent.AgentV1ThinkUpdated
  | Deepgram.agent.AgentV1ListenUpdated
  | Deepgram.agent.AgentV1InjectionRefused
  | Deepgram.agent.AgentV1Error;

const ENCODINGS: Record<string, SampleEncoding> = { linear16: "pcm16", mulaw: "mulaw", alaw: "alaw" };
const UPDATE_ACKNOWLEDGEMENTS = {
  UpdatePrompt: "PromptUpdated",
  UpdateSpeak: "SpeakUpdated",
  UpdateThink: "ThinkUpdated",
  UpdateListen: "ListenUpdated",
} as const;
const IDLE_MESSAGE =
  "We waited too long for a websocket message. Please ensure that you're sending binary messages containing user speech.";

interface Generation {
  record: ResponseRecord;
  cancelThinking: () => void;
  speech?: AgentSpeech;
}

/** `audio.input` / `audio.output` of Settings as wire formats, or what is wrong with them. */
function parseAudioSettings(audio: unknown): { input: AudioFormat; output: AudioFormat } | string {
  const settings = isRecord(audio) ? audio : {};
  const input = isRecord(settings.input) ? settings.input : undefined;
  const output = isRecord(settings.output) ? settings.output : {};
  const inputEncoding = input && typeof input.encoding === "string" ? ENCODINGS[input.encoding] : undefined;
  if (!input || !inputEncoding || !isSampleRate(input.sample_rate)) {
    return "audio.input needs encoding linear16, mulaw or alaw and a sample_rate";
  }
  const outputEncoding = output.encoding === undefined ? "pcm16" : ENCODINGS[String(output.encoding)];
  const outputRate = output.sample_rate === undefined ? 24000 : output.sample_rate;
  if (!outputEncoding || !isSampleRate(outputRate) || (output.container !== undefined && output.container !== "none")) {
    return "audio.output needs encoding linear16, mulaw or alaw, a sample_rate, and container none";
  }
  return {
    input: { encoding: inputEncoding, sampleRate: input.sample_rate },
    output: { encoding: outputEncoding, sampleRate: outputRate },
  };
}

function isSampleRate(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 8000 && value <= 48000;
}

export class DeepgramAgentSession {
  readonly #connection: ProviderConnection;
  readonly #script: ConversationScript;
  readonly #playback = new PlaybackClock();
  #formats: { input: AudioFormat; output: AudioFormat } | null = null;
  #vad: EnergyVad | null = null;
  #speechStartedMs = 0;
  #generation: Generation | null = null;
  #pendingFunctionCallId: string | null = null;
  #cancelIdleTimer: () => void = () => {};

  constructor(connection: ProviderConnection) {
    this.#connection = connection;
    this.#script = new ConversationScript(connection.scenario);
  }

  start(): void {
    const connection = this.#connection;
    connection.socket.on("message", (data, isBinary) => {
      this.#armIdleTimer();
      if (isBinary) this.#audio(rawDataBytes(data));
      else this.#message(parseJsonObject(data));
    });
    connection.onEnd(() => this.#generation?.speech?.cancel());
    scheduleFaults(connection, { errorEvent: (code, message) => this.#error(code, message) });
    this.#armIdleTimer();
    this.#send({ type: "Welcome", request_id: crypto.randomUUID() });
  }

  #send(message: ServerMessage): void {
    this.#connection.sendJson(message, message.type);
  }

  #error(code: string, description: string): void {
    this.#send({ type: "Error", code, description });
  }

  #armIdleTimer(): void {
    this.#cancelIdleTimer();
    this.#cancelIdleTimer = this.#connection.timers.after(this.#connection.settings.deepgramIdleTimeoutMs, () => {
      this.#connection.recorder.fault("idle-timeout");
      this.#error("CLIENT_MESSAGE_TIMEOUT", IDLE_MESSAGE);
      this.#connection.close(1011, "CLIENT_MESSAGE_TIMEOUT");
    });
  }

  #message(message: Record<string, unknown> | undefined): void {
    const recorder = this.#connection.recorder;
    const type = typeof message?.type === "string" ? message.type : "invalid";
    recorder.clientMessage(type);
    if (!message || type === "invalid") {
      return this.#error("UNPARSABLE_CLIENT_MESSAGE", "We could not parse the client message.");
    }
    if (type === "Settings") return this.#settings(message);
    if (!this.#formats) return this.#error("SETTINGS_REQUIRED", "The first message must be Settings.");
    switch (type) {
      case "KeepAlive":
        return;
      case "FunctionCallResponse":
        return this.#functionCallResponse(message);
      case "InjectUserMessage":
        return this.#injectUserMessage(message);
      case "InjectAgentMessage":
        return this.#injectAgentMessage(message);
      case "UpdatePrompt":
      case "UpdateSpeak":
      case "UpdateThink":
      case "UpdateListen":
        recorder.configUpdates.push(message);
        return this.#send({ type: UPDATE_ACKNOWLEDGEMENTS[type] });
      default:
        this.#error("UNPARSABLE_CLIENT_MESSAGE", `Unknown message type '${type}'.`);
    }
  }

  #settings(settings: Record<string, unknown>): void {
    const recorder = this.#connection.recorder;
    if (this.#formats) return this.#error("SETTINGS_ALREADY_APPLIED", "Settings may be sent only once.");
    recorder.setup = settings;
    const formats = parseAudioSettings(settings.audio);
    if (typeof formats === "string") return this.#error("INVALID_SETTINGS", formats);
    this.#formats = formats;
    this.#vad = new EnergyVad(formats.input.sampleRate, this.#connection.settings.vad);
    const agent = isRecord(settings.agent) ? settings.agent : {};
    const context = isRecord(agent.context) ? agent.context : {};
    if (Array.isArray(context.messages)) for (const message of context.messages) recorder.history.push(message);
    const applied = () => {
      this.#send({ type: "SettingsApplied" });
      if (typeof agent.greeting === "string" && agent.greeting) {
        this.#prepareSpeech(this.#newGeneration(agent.greeting, "audio"))();
      }
    };
    const delay = this.#connection.scenario.setupDelayMs ?? 0;
    if (delay > 0) setTimeout(applied, delay);
    else applied();
  }

  // ── caller input ─────────────────────────────────────────────────────────────────────────────────────────

  #audio(bytes: Buffer): void {
    this.#connection.recorder.clientMessage("binary-audio");
    if (!this.#formats || !this.#vad) return this.#error("SETTINGS_REQUIRED", "Audio arrived before Settings.");
    this.#connection.recorder.audioFrameIn(bytes);
    for (const event of this.#vad.push(decodeAudio(bytes, this.#formats.input.encoding))) this.#onVad(event);
  }

  #onVad(event: VadEvent): void {
    const recorder = this.#connection.recorder;
    if (event.kind === "speech-started") {
      this.#speechStartedMs = event.audioMs;
      const agentAudioPlaying = this.#playback.isPlaying;
      const generation = this.#generation;
      if (agentAudioPlaying || generation) {
        const responseInProgress = generation !== null;
        recorder.bargeIns.push({ at: preciseNow(), audioMs: event.audioMs, agentAudioPlaying, responseInProgress });
      }
      this.#send({ type: "UserStartedSpeaking" });
      this.#stopGeneration();
      this.#playback.reset();
      return;
    }
    const { turn, transcript } = this.#script.nextCallerTurn();
    recorder.turns.push({
      turn,
      transcript,
      speechStartedAudioMs: this.#speechStartedMs,
      speechStoppedAudioMs: event.audioMs,
      speechStoppedAt: preciseNow(),
    });
    this.#send({ type: "ConversationText", role: "user", content: transcript });
    this.#respond(this.#script.takeToolCall());
  }

  #stopGeneration(): void {
    const generation = this.#generation;
    if (!generation) return;
    generation.cancelThinking();
    generation.speech?.cancel();
    generation.record.outcome = "interrupted";
    generation.record.finishedAt = preciseNow();
    this.#generation = null;
  }

  #functionCallResponse(message: Record<string, unknown>): void {
    const id = typeof message.id === "string" ? message.id : "";
    this.#connection.recorder.functionCallOutputs.push({
      id,
      name: typeof message.name === "string" ? message.name : null,
      output: message.content,
      at: preciseNow(),
    });
    if (id && id === this.#pendingFunctionCallId) {
      this.#pendingFunctionCallId = null;
      this.#respond(undefined);
    }
  }

  #injectUserMessage(message: Record<string, unknown>): void {
    if (typeof message.content !== "string") {
      return this.#error("UNPARSABLE_CLIENT_MESSAGE", "InjectUserMessage needs content.");
    }
    this.#connection.recorder.history.push(message);
    this.#stopGeneration();
    this.#send({ type: "ConversationText", role: "user", content: message.content });
    this.#respond(undefined);
  }

  #injectAgentMessage(message: Record<string, unknown>): void {
    if (typeof message.message !== "string") {
      return this.#error("UNPARSABLE_CLIENT_MESSAGE", "InjectAgentMessage needs message.");
    }
    this.#connection.recorder.history.push(message);
    // The agent will not talk over the user or over itself.
    if (this.#vad?.speaking || this.#generation || this.#playback.isPlaying) {
      return this.#send({ type: "InjectionRefused", message: "The agent is busy: the user or the agent is speaking." });
    }
    this.#prepareSpeech(this.#newGeneration(message.message, "audio"))();
  }

  // ── agent output ─────────────────────────────────────────────────────────────────────────────────────────

  #newGeneration(text: string, kind: ResponseRecord["kind"]): Generation {
    const record: ResponseRecord = {
      id: providerId("agent-", 12),
      kind,
      turn: this.#script.currentTurn,
      text,
      startedAt: preciseNow(),
      firstAudioAt: null,
      finishedAt: null,
      outcome: "in-progress",
      audioMs: 0,
    };
    this.#connection.recorder.responses.push(record);
    const generation: Generation = { record, cancelThinking: () => {} };
    this.#generation = generation;
    return generation;
  }

  #respond(toolCall: ToolCallScript | undefined): void {
    this.#send({ type: "AgentThinking", content: "" });
    const generation = toolCall ? this.#newGeneration(toolCall.name, "tool-call") : this.#newGeneration(this.#script.nextReply(), "audio");
    const due = performance.now() + this.#connection.responseDelayMs;
    // The audio is synthesised during the thinking time, so it does not add to the measured latency.
    const output = toolCall ? () => this.#functionCall(generation, toolCall) : this.#prepareSpeech(generation);
    generation.cancelThinking = this.#connection.timers.after(due - performance.now(), output);
  }

  #functionCall(generation: Generation, toolCall: ToolCallScript): void {
    const id = providerId("fc_", 24);
    this.#pendingFunctionCallId = id;
    const args = JSON.stringify(toolCall.arguments);
    const { name } = toolCall;
    this.#send({ type: "FunctionCallRequest", functions: [{ id, name, arguments: args, client_side: true }] });
    this.#connection.recorder.toolCalls.push({ id, name, arguments: toolCall.arguments, at: preciseNow() });
    generation.record.outcome = "completed";
    generation.record.finishedAt = preciseNow();
    this.#generation = null;
  }

  #prepareSpeech(generation: Generation): () => void {
    const { settings, timers } = this.#connection;
    const options = { chunkMs: settings.audioChunkMs, speedFactor: settings.speedFactor, timers };
    // Invariant: every path that makes the agent speak starts after Settings were applied.
    if (!this.#formats) throw new Error("agent speech before Settings");
    const speech = new AgentSpeech(generation.record.text, this.#formats.output, options);
    return () => this.#speak(generation, speech);
  }

  #speak(generation: Generation, speech: AgentSpeech): void {
    const recorder = this.#connection.recorder;
    const text = generation.record.text;
    const latencySeconds = (preciseNow() - generation.record.startedAt) / 1000;
    this.#send({
      type: "AgentStartedSpeaking",
      total_latency: latencySeconds,
      ttt_latency: latencySeconds * 0.7,
      tts_latency: latencySeconds * 0.3,
    });
    this.#send({ type: "ConversationText", role: "assistant", content: text });
    generation.speech = speech;
    speech.start(
      (chunk) => {
        const at = preciseNow();
        generation.record.firstAudioAt ??= at;
        generation.record.audioMs += chunk.durationMs;
        this.#playback.chunkSent(chunk.durationMs);
        this.#connection.sendAudio(chunk.bytes);
        const { durationMs } = chunk;
        recorder.audioChunkOut({
          at,
          head: headOf(chunk.bytes),
          bytes: chunk.bytes.byteLength,
          durationMs,
          responseId: generation.record.id,
        });
      },
      () => {
        generation.record.outcome = "completed";
        generation.record.finishedAt = preciseNow();
        this.#generation = null;
        this.#send({ type: "AgentAudioDone" });
      },
    );
  }
}
