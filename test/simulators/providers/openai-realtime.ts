import type {
  ConversationItem,
  RealtimeConversationItemAssistantMessage,
  RealtimeResponse,
  RealtimeServerEvent,
} from "openai/resources/realtime/realtime";
import { bytesToMs, decodeAudio } from "./audio.ts";
import type { ProviderConnection } from "./connection.ts";
import { scheduleFaults } from "./connection.ts";
import { AgentSpeech, ConversationScript, PlaybackClock, progressiveText } from "./conversation.ts";
import type { StoredItem } from "./openai-items.ts";
import { imageOf, parseClientItem } from "./openai-items.ts";
import type { SessionConfig } from "./openai-session-config.ts";
import {
  defaultSessionConfig,
  mergeSessionUpdate,
  sessionObject,
  silenceMs,
  transcriptionSessionObject,
  wireFormat,
} from "./openai-session-config.ts";
import type { ResponseRecord } from "./recorder.ts";
import { headOf, preciseNow } from "./recorder.ts";
import type { ToolCallScript } from "./scenarios.ts";
import type { VadEvent } from "./vad.ts";
import { EnergyVad } from "./vad.ts";
import { decodeBase64, isRecord, parseJsonObject, providerId } from "./wire.ts";

/**
 * OpenAI Realtime (GA) over WebSocket, server side, with event shapes from the openai
 * package. Turn detection is an energy VAD over the decoded caller audio; a response streams its audio ahead
 * of real time while a playback clock tracks what the client is still playing, so caller speech during it is
 * a barge-in (`speech_started`, and the response is cancelled when `interrupt_response` allows).
 *
 * A connection opened with `?intent=transcription` (no model) serves a transcription session instead, as the service
 * does: it takes only `session.update` with `session.type: "transcription"` and audio; each utterance its VAD ends is
 * committed and answered `conversation.item.input_audio_transcription.completed` with the scenario's next
 * `callerTranscripts` entry; it never responds in audio. A realtime connection refuses a transcription update, and a
 * transcription connection a realtime one or anything about responses and items.
 */

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type ServerEvent = DistributiveOmit<RealtimeServerEvent, "event_id">;
type CancelReason = "turn_detected" | "client_cancelled";
type AssistantItem = RealtimeConversationItemAssistantMessage & { id: string };

interface ActiveResponse {
  id: string;
  itemId: string;
  previousItemId: string | null;
  record: ResponseRecord;
  cancelThinking: () => void;
  /** Set once audio output has begun (an output item exists from then on). */
  speech?: AgentSpeech;
  transcriptSent: number;
}

const SUPPORTED_CLIENT_EVENTS = [
  "session.update",
  "input_audio_buffer.append",
  "input_audio_buffer.commit",
  "input_audio_buffer.clear",
  "output_audio_buffer.clear",
  "conversation.item.create",
  "conversation.item.retrieve",
  "conversation.item.truncate",
  "conversation.item.delete",
  "response.create",
  "response.cancel",
];
/** What a transcription session accepts; everything else is refused like an unknown type. */
const TRANSCRIPTION_CLIENT_EVENTS = [
  "session.update",
  "input_audio_buffer.append",
  "input_audio_buffer.commit",
  "input_audio_buffer.clear",
];
const MIN_COMMIT_MS = 100;
const MAX_ITEMS = 5000;
const ARGUMENT_DELTA_CHARACTERS = 16;

export class OpenAiRealtimeSession {
  readonly #connection: ProviderConnection;
  readonly #script: ConversationScript;
  readonly #playback = new PlaybackClock();
  readonly #items = new Map<string, { item: StoredItem; audioMs: number }>();
  readonly #callIds = new Set<string>();
  readonly #sessionId = providerId("sess_");
  readonly #transcriptionOnly: boolean;
  #config: SessionConfig;
  #vad: EnergyVad;
  #eventCount = 0;
  #lastItemId: string | null = null;
  #speechItemId: string | null = null;
  #speechStartedMs = 0;
  #uncommittedMs = 0;
  #active: ActiveResponse | null = null;

  constructor(connection: ProviderConnection, model: string | null, intent: string | null = null) {
    this.#connection = connection;
    this.#transcriptionOnly = intent === "transcription";
    this.#script = new ConversationScript(connection.scenario);
    this.#config = defaultSessionConfig(model);
    this.#vad = this.#newVad(0);
  }

  start(): void {
    const connection = this.#connection;
    connection.socket.on("message", (data) => this.#receive(parseJsonObject(data)));
    connection.onEnd(() => this.#active?.speech?.cancel());
    scheduleFaults(connection, {
      errorEvent: (code, message) => this.#emit({ type: "error", error: { type: "server_error", code, message } }),
    });
    this.#emit({ type: "session.created", session: this.#sessionObject() });
  }

  #sessionObject() {
    return (this.#transcriptionOnly ? transcriptionSessionObject : sessionObject)(this.#config, this.#sessionId);
  }

  #emit(event: ServerEvent): void {
    this.#connection.sendJson({ event_id: `event_${++this.#eventCount}`, ...event }, event.type);
  }

  #error(code: string, message: string, param: string | null, clientEvent: Record<string, unknown>): void {
    const event_id = typeof clientEvent.event_id === "string" ? clientEvent.event_id : null;
    this.#emit({ type: "error", error: { type: "invalid_request_error", code, message, param, event_id } });
  }

  #receive(event: Record<string, unknown> | undefined): void {
    const recorder = this.#connection.recorder;
    if (!event || typeof event.type !== "string") {
      recorder.clientMessage("invalid");
      const message = "The server could not parse the event: expected a JSON object with a string 'type'.";
      return this.#error("invalid_json", message, null, event ?? {});
    }
    recorder.clientMessage(event.type);
    if (this.#transcriptionOnly && !TRANSCRIPTION_CLIENT_EVENTS.includes(event.type)) {
      const supported = TRANSCRIPTION_CLIENT_EVENTS.map((type) => `'${type}'`).join(", ");
      return this.#error("invalid_value", `Invalid value: '${event.type}'. Supported values are: ${supported}.`, "type", event);
    }
    switch (event.type) {
      case "session.update":
        return this.#sessionUpdate(event);
      case "input_audio_buffer.append":
        return this.#appendAudio(event);
      case "input_audio_buffer.commit":
        return this.#commitBuffer(event);
      case "input_audio_buffer.clear":
        this.#uncommittedMs = 0;
        return this.#emit({ type: "input_audio_buffer.cleared" });
      case "output_audio_buffer.clear":
        // WebRTC/SIP only: over a WebSocket the client owns playback, so there is nothing to clear.
        return;
      case "conversation.item.create":
        return this.#createItem(event);
      case "conversation.item.retrieve":
      case "conversation.item.delete":
        return this.#itemLookup(event, event.type);
      case "conversation.item.truncate":
        return this.#truncate(event);
      case "response.create":
        if (!this.#active) return this.#startResponse();
        return this.#error(
          "conversation_already_has_active_response",
          `Conversation already has an active response in progress: ${this.#active.id}. ` +
            "Wait until the response is finished before creating a new one.",
          null,
          event,
        );
      case "response.cancel":
        if (this.#active) return this.#cancelResponse("client_cancelled");
        return this.#error("response_cancel_not_active", "Cancellation failed: no active response found", null, event);
      default: {
        const supported = SUPPORTED_CLIENT_EVENTS.map((type) => `'${type}'`).join(", ");
        const message = `Invalid value: '${event.type}'. Supported values are: ${supported}.`;
        this.#error("invalid_value", message, "type", event);
      }
    }
  }

  #sessionUpdate(event: Record<string, unknown>): void {
    const recorder = this.#connection.recorder;
    if (recorder.setup === null) recorder.setup = event;
    else recorder.configUpdates.push(event);
    const session = event.session;
    if (!isRecord(session)) {
      return this.#error("missing_required_parameter", "Missing required parameter: 'session'.", "session", event);
    }
    if ((session.type === "transcription") !== this.#transcriptionOnly) {
      const message = this.#transcriptionOnly
        ? "This connection serves a transcription session: session.type must be 'transcription'."
        : "A transcription session needs a connection opened with ?intent=transcription.";
      return this.#error("invalid_value", message, "session.type", event);
    }
    const next = mergeSessionUpdate(this.#config, session);
    if (typeof next === "string") return this.#error("invalid_value", next, "session", event);
    const restartVad =
      wireFormat(next.inputFormat).sampleRate !== wireFormat(this.#config.inputFormat).sampleRate ||
      silenceMs(next.turnDetection) !== silenceMs(this.#config.turnDetection);
    this.#config = next;
    if (restartVad) this.#vad = this.#newVad(this.#vad.positionMs);
    this.#emit({ type: "session.updated", session: this.#sessionObject() });
  }

  #newVad(startMs: number): EnergyVad {
    const vad = this.#connection.settings.vad;
    const silence = silenceMs(this.#config.turnDetection) ?? vad.silenceMs;
    return new EnergyVad(wireFormat(this.#config.inputFormat).sampleRate, { ...vad, silenceMs: silence }, startMs);
  }

  // ── caller audio ─────────────────────────────────────────────────────────────────────────────────────────

  #appendAudio(event: Record<string, unknown>): void {
    const bytes = decodeBase64(event.audio);
    if (!bytes) {
      return this.#error("invalid_value", "Invalid 'audio'. Expected base64-encoded audio bytes.", "audio", event);
    }
    this.#connection.recorder.audioFrameIn(bytes);
    const format = wireFormat(this.#config.inputFormat);
    this.#uncommittedMs += bytesToMs(bytes.byteLength, format);
    // The detector always runs, so audio time stays right if turn detection is switched on later.
    const events = this.#vad.push(decodeAudio(bytes, format.encoding));
    if (this.#config.turnDetection) for (const vadEvent of events) this.#onVad(vadEvent);
  }

  #onVad(event: VadEvent): void {
    if (event.kind === "speech-started") return this.#speechStarted(event.audioMs);
    const lateMs = this.#connection.scenario.hearsTurnEndLateMs ?? 0;
    if (lateMs > 0) this.#connection.timers.after(lateMs, () => this.#speechStopped(event.audioMs));
    else this.#speechStopped(event.audioMs);
  }

  #speechStopped(audioMs: number): void {
    const itemId = this.#speechItemId ?? providerId("item_");
    this.#speechItemId = null;
    this.#emit({ type: "input_audio_buffer.speech_stopped", audio_end_ms: Math.round(audioMs), item_id: itemId });
    this.#commitUserAudio(itemId, this.#speechStartedMs, audioMs);
    if (this.#transcriptionOnly) return;
    if (this.#config.turnDetection?.create_response !== false && !this.#active) this.#startResponse();
  }

  #speechStarted(audioMs: number): void {
    const itemId = providerId("item_");
    this.#speechItemId = itemId;
    this.#speechStartedMs = audioMs;
    const agentAudioPlaying = this.#playback.isPlaying;
    if (agentAudioPlaying || this.#active) {
      const responseInProgress = this.#active !== null;
      this.#connection.recorder.bargeIns.push({ at: preciseNow(), audioMs, agentAudioPlaying, responseInProgress });
    }
    this.#emit({ type: "input_audio_buffer.speech_started", audio_start_ms: Math.round(audioMs), item_id: itemId });
    // The client is expected to flush its playback now (and truncate the item to what was heard).
    this.#playback.reset();
    if (this.#active && this.#config.turnDetection?.interrupt_response !== false) this.#cancelResponse("turn_detected");
  }

  #commitBuffer(event: Record<string, unknown>): void {
    const stopped = this.#vad.flush();
    if (stopped && this.#config.turnDetection) return this.#onVad(stopped);
    if (this.#uncommittedMs < MIN_COMMIT_MS) {
      const message =
        `Error committing input audio buffer: buffer too small. Expected at least ${MIN_COMMIT_MS}ms of audio, ` +
        `but buffer only has ${this.#uncommittedMs.toFixed(2)}ms of audio.`;
      return this.#error("input_audio_buffer_commit_empty", message, null, event);
    }
    this.#commitUserAudio(providerId("item_"), this.#vad.positionMs - this.#uncommittedMs, this.#vad.positionMs);
  }

  #commitUserAudio(itemId: string, startedMs: number, stoppedMs: number): void {
    this.#uncommittedMs = 0;
    this.#emit({ type: "input_audio_buffer.committed", item_id: itemId, previous_item_id: this.#lastItemId });
    const content = [{ type: "input_audio" as const }];
    this.#addItem({ id: itemId, object: "realtime.item", type: "message", role: "user", status: "completed", content });
    const { turn, transcript } = this.#script.nextCallerTurn();
    this.#connection.recorder.turns.push({
      turn,
      transcript,
      speechStartedAudioMs: startedMs,
      speechStoppedAudioMs: stoppedMs,
      speechStoppedAt: preciseNow(),
    });
    if (!this.#config.transcription) return;
    this.#emit({
      type: "conversation.item.input_audio_transcription.completed",
      item_id: itemId,
      content_index: 0,
      transcript,
      usage: { type: "duration", seconds: Math.ceil((stoppedMs - startedMs) / 1000) },
    });
  }

  // ── conversation items ───────────────────────────────────────────────────────────────────────────────────

  #addItem(item: StoredItem): void {
    this.#emit({ type: "conversation.item.added", previous_item_id: this.#lastItemId, item });
    this.#emit({ type: "conversation.item.done", previous_item_id: this.#lastItemId, item });
    this.#remember(item);
  }

  #remember(item: StoredItem): void {
    this.#items.set(item.id, { item, audioMs: 0 });
    this.#lastItemId = item.id;
    if (this.#items.size > MAX_ITEMS) {
      const oldest = this.#items.keys().next().value;
      if (oldest !== undefined) this.#items.delete(oldest);
    }
  }

  #createItem(event: Record<string, unknown>): void {
    const recorder = this.#connection.recorder;
    if (!isRecord(event.item)) {
      return this.#error("missing_required_parameter", "Missing required parameter: 'item'.", "item", event);
    }
    recorder.history.push(event.item);
    const item = parseClientItem(event.item, typeof event.item.id === "string" ? event.item.id : providerId("item_"));
    if (typeof item === "string") return this.#error("invalid_value", item, "item", event);
    const parts = Array.isArray(event.item.content) ? event.item.content.filter(isRecord) : [];
    for (const part of parts) {
      const image = part.type === "input_image" ? imageOf(part) : null;
      if (image && typeof image !== "string") recorder.image(image.mimeType, image.bytes);
    }
    if (item.type === "function_call" && item.call_id) this.#callIds.add(item.call_id);
    if (item.type === "function_call_output") {
      if (!this.#callIds.has(item.call_id)) {
        const message = `Tool call ID '${item.call_id}' not found in conversation.`;
        return this.#error("invalid_value", message, "item.call_id", event);
      }
      recorder.functionCallOutputs.push({ id: item.call_id, name: null, output: item.output, at: preciseNow() });
    }
    this.#addItem(item);
  }

  #itemLookup(event: Record<string, unknown>, type: "conversation.item.retrieve" | "conversation.item.delete"): void {
    const itemId = typeof event.item_id === "string" ? event.item_id : "";
    const entry = this.#items.get(itemId);
    if (!entry) return this.#error("item_not_found", `Item with item_id '${itemId}' not found.`, "item_id", event);
    if (type === "conversation.item.retrieve") {
      return this.#emit({ type: "conversation.item.retrieved", item: entry.item });
    }
    this.#items.delete(itemId);
    this.#emit({ type: "conversation.item.deleted", item_id: itemId });
  }

  #truncate(event: Record<string, unknown>): void {
    const { item_id: itemId, content_index: contentIndex, audio_end_ms: audioEndMs } = event;
    const valid = typeof itemId === "string" && typeof contentIndex === "number" && typeof audioEndMs === "number";
    if (!valid || audioEndMs < 0) {
      const message = "conversation.item.truncate needs item_id, content_index and a non-negative audio_end_ms.";
      return this.#error("invalid_value", message, null, event);
    }
    const entry = this.#items.get(itemId);
    if (!entry) return this.#error("item_not_found", `Item with item_id '${itemId}' not found.`, "item_id", event);
    if (entry.item.type !== "message" || entry.item.role !== "assistant") {
      return this.#error("invalid_value", "Only assistant messages with audio can be truncated.", "item_id", event);
    }
    // Half a millisecond of slack: clients sum chunk durations in floating point.
    const accepted = audioEndMs <= entry.audioMs + 0.5;
    const generatedMs = entry.audioMs;
    this.#connection.recorder.truncations.push({ itemId, audioEndMs, generatedMs, accepted, at: preciseNow() });
    if (!accepted) {
      const message = `Audio content of ${Math.round(generatedMs)}ms is already shorter than ${audioEndMs}ms`;
      return this.#error("invalid_value", message, "audio_end_ms", event);
    }
    entry.audioMs = audioEndMs;
    this.#emit({
      type: "conversation.item.truncated",
      item_id: itemId,
      content_index: contentIndex,
      audio_end_ms: audioEndMs,
    });
  }

  // ── responses ────────────────────────────────────────────────────────────────────────────────────────────

  #responseObject(
    active: ActiveResponse,
    status: RealtimeResponse["status"],
    output: ConversationItem[],
    reason?: CancelReason,
  ): RealtimeResponse {
    return {
      object: "realtime.response",
      id: active.id,
      status,
      ...(reason ? { status_details: { type: "cancelled", reason } } : {}),
      output,
      output_modalities: this.#config.outputModalities,
      audio: { output: { format: this.#config.outputFormat, voice: this.#config.voice } },
      // Counts the way the real service does (whole-response totals), derived from the text so tests can expect them:
      // a token per word of the reply's transcript out, and 100 in per response.
      ...(status === "in_progress" ? {} : { usage: usageOf(output) }),
    };
  }

  #startResponse(): void {
    const toolCall = this.#script.takeToolCall();
    const record: ResponseRecord = {
      id: providerId("resp_"),
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
    const active: ActiveResponse = {
      id: record.id,
      itemId: providerId("item_"),
      previousItemId: null,
      record,
      cancelThinking: () => {},
      transcriptSent: 0,
    };
    this.#active = active;
    this.#emit({ type: "response.created", response: this.#responseObject(active, "in_progress", []) });
    const due = performance.now() + this.#connection.responseDelayMs;
    // The audio is synthesised during the thinking time, so it does not add to the measured latency.
    const output = toolCall ? () => this.#functionCall(active, toolCall) : this.#prepareSpeech(active);
    active.cancelThinking = this.#connection.timers.after(due - performance.now(), output);
  }

  #functionCall(active: ActiveResponse, toolCall: ToolCallScript): void {
    const callId = providerId("call_", 16);
    const args = JSON.stringify(toolCall.arguments);
    const { name } = toolCall;
    const base = { id: active.itemId, object: "realtime.item", type: "function_call", call_id: callId, name } as const;
    const pending: StoredItem = { ...base, status: "in_progress", arguments: "" };
    const done: StoredItem = { ...base, status: "completed", arguments: args };
    const ids = { response_id: active.id, item_id: active.itemId, output_index: 0, call_id: callId };
    this.#emit({ type: "response.output_item.added", response_id: active.id, output_index: 0, item: pending });
    this.#emit({ type: "conversation.item.added", previous_item_id: this.#lastItemId, item: pending });
    for (let offset = 0; offset < args.length; offset += ARGUMENT_DELTA_CHARACTERS) {
      const delta = args.slice(offset, offset + ARGUMENT_DELTA_CHARACTERS);
      this.#emit({ type: "response.function_call_arguments.delta", ...ids, delta });
    }
    this.#emit({ type: "response.function_call_arguments.done", ...ids, name, arguments: args });
    this.#emit({ type: "response.output_item.done", response_id: active.id, output_index: 0, item: done });
    this.#emit({ type: "conversation.item.done", previous_item_id: this.#lastItemId, item: done });
    this.#remember(done);
    this.#callIds.add(callId);
    this.#connection.recorder.toolCalls.push({ id: callId, name, arguments: toolCall.arguments, at: preciseNow() });
    this.#finish(active, "completed", [done]);
  }

  #assistantItem(active: ActiveResponse, status: AssistantItem["status"], transcript: string): AssistantItem {
    const content = status === "in_progress" ? [] : [{ type: "output_audio" as const, transcript }];
    return { id: active.itemId, object: "realtime.item", type: "message", role: "assistant", status, content };
  }

  #prepareSpeech(active: ActiveResponse): () => void {
    const { settings, timers } = this.#connection;
    const options = { chunkMs: settings.audioChunkMs, speedFactor: settings.speedFactor, timers };
    const speech = new AgentSpeech(active.record.text, wireFormat(this.#config.outputFormat), options);
    return () => this.#speak(active, speech);
  }

  #speak(active: ActiveResponse, speech: AgentSpeech): void {
    const text = active.record.text;
    const ids = { response_id: active.id, item_id: active.itemId, output_index: 0, content_index: 0 };
    const item = this.#assistantItem(active, "in_progress", "");
    active.previousItemId = this.#lastItemId;
    active.speech = speech;
    this.#emit({ type: "response.output_item.added", response_id: active.id, output_index: 0, item });
    this.#emit({ type: "conversation.item.added", previous_item_id: active.previousItemId, item });
    this.#remember(item);
    this.#emit({ type: "response.content_part.added", ...ids, part: { type: "audio", transcript: "" } });
    speech.start(
      (chunk) => {
        const at = preciseNow();
        active.record.firstAudioAt ??= at;
        active.record.audioMs += chunk.durationMs;
        const entry = this.#items.get(active.itemId);
        if (entry) entry.audioMs += chunk.durationMs;
        this.#playback.chunkSent(chunk.durationMs);
        this.#emit({ type: "response.output_audio.delta", ...ids, delta: Buffer.from(chunk.bytes).toString("base64") });
        const { durationMs } = chunk;
        this.#connection.recorder.audioChunkOut({
          at,
          head: headOf(chunk.bytes),
          bytes: chunk.bytes.byteLength,
          durationMs,
          responseId: active.id,
        });
        const piece = progressiveText(text, chunk.index, chunk.count, active.transcriptSent);
        if (!piece) return;
        active.transcriptSent += piece.length;
        this.#emit({ type: "response.output_audio_transcript.delta", ...ids, delta: piece });
      },
      () => {
        this.#emit({ type: "response.output_audio.done", ...ids });
        this.#emit({ type: "response.output_audio_transcript.done", ...ids, transcript: text });
        this.#emit({ type: "response.content_part.done", ...ids, part: { type: "audio", transcript: text } });
        const done = this.#assistantItem(active, "completed", text);
        const entry = this.#items.get(active.itemId);
        if (entry) entry.item = done;
        this.#emit({ type: "response.output_item.done", response_id: active.id, output_index: 0, item: done });
        this.#emit({ type: "conversation.item.done", previous_item_id: active.previousItemId, item: done });
        this.#finish(active, "completed", [done]);
      },
    );
  }

  #cancelResponse(reason: CancelReason): void {
    const active = this.#active;
    if (!active) return;
    active.cancelThinking();
    const output: ConversationItem[] = [];
    if (active.speech) {
      active.speech.cancel();
      const partial = this.#assistantItem(active, "incomplete", active.record.text.slice(0, active.transcriptSent));
      this.#emit({ type: "response.output_item.done", response_id: active.id, output_index: 0, item: partial });
      output.push(partial);
    }
    active.record.outcome = reason === "turn_detected" ? "interrupted" : "cancelled";
    this.#finish(active, "cancelled", output, reason);
  }

  #finish(active: ActiveResponse, status: "completed" | "cancelled", output: ConversationItem[], reason?: CancelReason): void {
    if (status === "completed") active.record.outcome = "completed";
    active.record.finishedAt = preciseNow();
    this.#active = null;
    this.#emit({ type: "response.done", response: this.#responseObject(active, status, output, reason) });
  }
}

function usageOf(output: ConversationItem[]): { total_tokens: number; input_tokens: number; output_tokens: number } {
  const words = JSON.stringify(output.map((item) => ("content" in item ? item.content : []))).match(/"transcript":"([^"]*)"/g) ?? [];
  const outputTokens = words.reduce((sum, field) => sum + field.slice(14, -1).split(/\s+/).filter(Boolean).length, 0);
  return { total_tokens: 100 + outputTokens, input_tokens: 100, output_tokens: outputTokens };
}
