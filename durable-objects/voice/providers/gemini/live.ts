import type {
  ActivityHandling,
  Content,
  FunctionDeclaration,
  LiveClientMessage,
  LiveClientSetup,
  LiveServerContent,
  LiveServerMessage,
  LiveServerSessionResumptionUpdate,
  LiveServerToolCall,
  Modality,
  Part,
} from "@google/genai";
import { isRecord } from "../../../../workers/shared/json.ts";
import type { AudioFormat } from "../../../media/audio/audio-format.ts";
import {
  type ConversationItem,
  guidanceText,
  type ImageFrame,
  type ProviderConnectOptions,
  type ProviderSessionConfig,
  type VoiceProvider,
} from "../provider.ts";
import { SocketProvider, type SocketProviderStats } from "../socket-provider.ts";

/**
 * Gemini Live (BidiGenerateContent) behind the VoiceProvider interface. Wire messages are typed
 * from @google/genai; its runtime is not used (its Live client cannot send our X-Correlation-ID header, and the
 * Worker bundle does not need it).
 *
 * Choices worth knowing:
 * - Lifecycle, failures and the size guard are the shared base's (socket-provider.ts): events raised during setup
 *   (an early `goAway`) are delivered right after `connect` resolves; a failure before that emits nothing.
 * - History is replayed as ONE `clientContent` with text turns (consecutive same-role items merged). Tool items
 *   become a bracketed text summary in the model's turn rather than functionCall/functionResponse parts: whether
 *   the Live API accepts those parts in client content with ids from another session is unverified, and a refusal
 *   would close the new session (1007) mid-call. `turnComplete` is true unless the last item is an agent message,
 *   so Gemini answers a caller (or a tool result) left unanswered by the rollover, and otherwise waits for speech.
 * - Transcripts are accumulated and emitted once per turn: the caller's when Gemini marks it finished, the model
 *   starts answering, or the turn completes; the agent's (carrying the turn's itemId) at `turnComplete`, holding
 *   only what was forwarded before a barge-in. Pending text is flushed before `closed`.
 * - `interrupt` sends nothing (Gemini truncates its own context on interruption) but discards the rest of that
 *   turn's audio; the server's `interrupted` does the same and emits `caller_speech_started`.
 * - A tool result for a call Gemini cancelled (`toolCallCancellation`) is dropped; other results are sent.
 *
 * Longer than the ~300 lines a part aims at, on purpose: it is one vendor's whole wire protocol — setup, both
 * directions, barge-in, failure rules — and reads best in one place; its helpers are local to that protocol.
 */

export const DEFAULT_GEMINI_MODEL = "models/gemini-live-2.5-flash-preview";
const INPUT_FORMAT: AudioFormat = { encoding: "pcm16", sampleRate: 16000 };
const OUTPUT_FORMAT: AudioFormat = { encoding: "pcm16", sampleRate: 24000 };
const INPUT_MIME_TYPE = "audio/pcm;rate=16000";
const OUTPUT_MIME_TYPE = /^audio\/pcm(?:;\s*rate=24000)?$/;

/** Larger provider messages close the connection with 1009 (Gemini's audio chunks are a few KiB). */
const DEFAULT_MAX_INBOUND_BYTES = 2 * 1024 * 1024;
/** ~8 s of 16 kHz audio in base64: the call sends 20 ms frames, so anything bigger is a bug upstream. */
const MAX_AUDIO_FRAME_CHARS = 256 * 1024;
const MAX_TEXT_CHARS = 16_000;
const MAX_TOOL_RESULT_CHARS = 256 * 1024;
const MAX_TRANSCRIPT_CHARS = 16_000;
/** Replayed history keeps the most recent items within this many characters (sliding-window compression
 * trims the context server-side anyway). */
const MAX_HISTORY_CHARS = 200_000;
const MAX_HANDLE_CHARS = 4096;
const MAX_REMEMBERED_CANCELLATIONS = 64;

// String enums cannot be written as literals under `import type`; the casts name the SDK member they stand for.
const AUDIO_MODALITY = "AUDIO" as Modality.AUDIO;
const INTERRUPT_ON_ACTIVITY = "START_OF_ACTIVITY_INTERRUPTS" as ActivityHandling.START_OF_ACTIVITY_INTERRUPTS;

/** A server message as it is on the wire (the SDK class adds getters that are not). */
type WireServerMessage = Omit<LiveServerMessage, "text" | "data">;

export interface GeminiLiveOptions extends ProviderConnectOptions {
  /** Default: models/gemini-live-2.5-flash-preview. */
  model?: string;
  /** Bound on one provider message; default 2 MiB. */
  maxInboundMessageBytes?: number;
  /** How long to wait for `setupComplete` once the socket is open; default CONNECT_TIMEOUT_MS. */
  setupTimeoutMs?: number;
}

export interface GeminiLiveStats extends SocketProviderStats {
  /** Caller audio dropped: not connected yet or any more, or an oversized frame. */
  droppedCallerAudio: number;
  /** Agent audio chunks discarded after a barge-in (the rest of an interrupted turn). */
  discardedAgentAudio: number;
  cancelledToolCalls: number;
  /** Tool results not sent because Gemini had cancelled the call. */
  droppedToolResults: number;
}

export interface GeminiLiveProvider extends VoiceProvider {
  readonly stats: Readonly<GeminiLiveStats>;
}

export async function connectGeminiLive(options: GeminiLiveOptions, config: ProviderSessionConfig): Promise<GeminiLiveProvider> {
  const provider = new GeminiLiveSession(options);
  await provider.connect(config);
  return provider;
}

/** protobuf Duration JSON ("5s", "0.25s", "1.000340012s") → ms; null when it is not one. */
function parseDurationMs(value: unknown): number | null {
  if (typeof value !== "string") return null;
  const match = /^(\d{1,12}(?:\.\d{1,9})?)s$/.exec(value.trim());
  return match?.[1] ? Math.round(Number(match[1]) * 1000) : null;
}

function truncate(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}…[truncated]`;
}

function historyText(item: ConversationItem): { role: "user" | "model"; text: string } {
  if (item.kind === "message") {
    return { role: item.role === "caller" ? "user" : "model", text: truncate(item.text, MAX_TEXT_CHARS) };
  }
  const summary = `[Tool call ${item.name}(${item.arguments}) returned ${item.result}]`;
  return { role: "model", text: truncate(summary, MAX_TEXT_CHARS) };
}

/** The history as Gemini turns: most recent items within the budget, consecutive same-role items merged. */
function historyTurns(history: readonly ConversationItem[]): Content[] {
  const kept: Array<{ role: "user" | "model"; text: string }> = [];
  let budget = MAX_HISTORY_CHARS;
  for (let i = history.length - 1; i >= 0; i--) {
    const item = history[i];
    if (!item) continue;
    const entry = historyText(item);
    budget -= entry.text.length;
    if (budget < 0) break;
    kept.unshift(entry);
  }
  const turns: Array<{ role: "user" | "model"; parts: Array<{ text: string }> }> = [];
  for (const { role, text } of kept) {
    const last = turns.at(-1);
    if (last?.role === role) last.parts.push({ text });
    else turns.push({ role, parts: [{ text }] });
  }
  return turns;
}

function setupMessage(model: string, config: ProviderSessionConfig): LiveClientMessage {
  const functionDeclarations = config.tools.map(
    // parametersJsonSchema takes JSON Schema as is; `parameters` wants Google's OpenAPI subset (uppercase types).
    (tool): FunctionDeclaration => ({ name: tool.name, description: tool.description, parametersJsonSchema: tool.parameters }),
  );
  const setup: LiveClientSetup = {
    model,
    generationConfig: {
      responseModalities: [AUDIO_MODALITY],
      ...(config.voice && { speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: config.voice } } } }),
    },
    ...(config.instructions && { systemInstruction: { parts: [{ text: config.instructions }] } }),
    ...(functionDeclarations.length > 0 && { tools: [{ functionDeclarations }] }),
    realtimeInputConfig: {
      automaticActivityDetection: { disabled: false },
      activityHandling: INTERRUPT_ON_ACTIVITY,
    },
    inputAudioTranscription: {},
    outputAudioTranscription: {},
    // Always on, so Gemini issues handles for the next rollover; a handle resumes the server-side context.
    sessionResumption: config.resumptionHandle ? { handle: config.resumptionHandle } : {},
    contextWindowCompression: { slidingWindow: {} },
  };
  return { setup };
}

/** Transcript fragments of one speaker, bounded. */
class TranscriptBuffer {
  private text = "";

  append(fragment: string): void {
    if (this.text.length < MAX_TRANSCRIPT_CHARS) this.text = (this.text + fragment).slice(0, MAX_TRANSCRIPT_CHARS);
  }

  take(): string {
    const text = this.text.trim();
    this.text = "";
    return text;
  }
}

interface ModelTurn {
  itemId: string;
  sentAudio: boolean;
  /** Barge-in: the rest of this turn's audio (and its transcript) is dropped. */
  discarding: boolean;
  transcript: TranscriptBuffer;
}

class GeminiLiveSession extends SocketProvider implements GeminiLiveProvider {
  readonly name = "gemini" as const;
  readonly inputFormat = INPUT_FORMAT;
  readonly outputFormat = OUTPUT_FORMAT;
  private readonly counts = { droppedCallerAudio: 0, discardedAgentAudio: 0, cancelledToolCalls: 0, droppedToolResults: 0 };
  private readonly options: GeminiLiveOptions;
  private turn: ModelTurn | null = null;
  private readonly callerTranscript = new TranscriptBuffer();
  private readonly cancelledToolCalls = new Set<string>();

  constructor(options: GeminiLiveOptions) {
    super(options.onEvent, {
      maxInboundSize: options.maxInboundMessageBytes ?? DEFAULT_MAX_INBOUND_BYTES,
      setupTimeoutMs: options.setupTimeoutMs,
    });
    this.options = options;
  }

  get stats(): Readonly<GeminiLiveStats> {
    return { ...this.baseCounts, ...this.counts };
  }

  // ── setup (Gemini frames its JSON as binary: the base decodes it; text frames are accepted too) ────────────

  protected endpoint(config: ProviderSessionConfig): { url: string; headers: Record<string, string> } {
    let url: URL;
    try {
      url = new URL(this.options.url);
    } catch {
      throw new Error("invalid Gemini Live URL"); // never echo the URL: it will carry the key
    }
    url.searchParams.set("key", this.options.apiKey);
    return { url: url.href, headers: { "X-Correlation-ID": config.correlationId } };
  }

  protected opened(config: ProviderSessionConfig): void {
    this.send(setupMessage(this.options.model ?? DEFAULT_GEMINI_MODEL, config));
  }

  /** During setup the same dispatch runs: `setupComplete` settles it, anything else it carries is held until then. */
  protected setupMessage(message: Record<string, unknown>): void {
    this.dispatch(message as WireServerMessage);
  }

  protected message(message: Record<string, unknown>): void {
    this.dispatch(message as WireServerMessage);
  }

  protected override ready(config: ProviderSessionConfig): void {
    // With a resumption handle the server already holds the conversation: replaying it would duplicate it.
    const turns = config.resumptionHandle ? [] : historyTurns(config.history);
    if (turns.length === 0) return;
    const lastItem = config.history.at(-1);
    const turnComplete = !(lastItem?.kind === "message" && lastItem.role === "agent");
    this.send({ clientContent: { turns, turnComplete } });
  }

  /** Pending transcripts go out before `closed`. */
  protected override closing(): void {
    this.flushCallerTranscript();
    const turn = this.turn;
    this.turn = null;
    const text = turn?.transcript.take();
    if (turn && text) this.emit({ type: "transcript", role: "agent", text, itemId: turn.itemId });
  }

  // ── outbound ─────────────────────────────────────────────────────────────────────────────────────────────

  sendAudio(base64: string): void {
    if (!this.isOpen || typeof base64 !== "string" || base64.length > MAX_AUDIO_FRAME_CHARS) {
      this.counts.droppedCallerAudio++;
      return;
    }
    this.send({ realtimeInput: { audio: { data: base64, mimeType: INPUT_MIME_TYPE } } });
  }

  /** A frame of the caller's screen on Live's video stream (Gemini samples it as it would a camera's). */
  sendImage(image: ImageFrame): void {
    if (!this.isOpen) return;
    this.send({ realtimeInput: { video: { data: image.base64, mimeType: image.mimeType } } });
  }

  sendText(text: string): void {
    if (!this.isOpen || typeof text !== "string" || !text) return;
    const turns = [{ role: "user", parts: [{ text: truncate(text, MAX_TEXT_CHARS) }] }];
    this.send({ clientContent: { turns, turnComplete: true } });
  }

  /** `turnComplete: false`: the text joins the context without ending a turn, so the model does not answer it. */
  guide(text: string): void {
    if (!this.isOpen || !text) return;
    const turns = [{ role: "user", parts: [{ text: truncate(guidanceText(text), MAX_TEXT_CHARS) }] }];
    this.send({ clientContent: { turns, turnComplete: false } });
  }

  addContext(items: ConversationItem[]): void {
    const turns = historyTurns(items);
    if (!this.isOpen || turns.length === 0) return;
    this.send({ clientContent: { turns, turnComplete: false } });
  }

  sendToolResult(callId: string, name: string, result: string): void {
    if (!this.isOpen) return;
    if (this.cancelledToolCalls.has(callId)) {
      this.counts.droppedToolResults++;
      return;
    }
    const response = { result: truncate(String(result), MAX_TOOL_RESULT_CHARS) };
    this.send({ toolResponse: { functionResponses: [{ id: callId, name, response }] } });
  }

  interrupt(itemId: string, _heardMs: number): void {
    // Nothing to send: Gemini keeps only what it generated up to its own interruption point.
    if (this.turn?.itemId === itemId) this.turn.discarding = true;
  }

  private send(message: LiveClientMessage): void {
    this.sendJson(message);
  }

  // ── inbound ──────────────────────────────────────────────────────────────────────────────────────────────

  private dispatch(message: WireServerMessage): void {
    const { setupComplete, serverContent, toolCall, toolCallCancellation, goAway, sessionResumptionUpdate, usageMetadata } = message;
    if (setupComplete !== undefined) this.setupDone();
    if (isRecord(usageMetadata)) {
      this.emit({
        type: "usage",
        inputTokens: tokenCount(usageMetadata.promptTokenCount),
        outputTokens: tokenCount(usageMetadata.responseTokenCount),
      });
    }
    if (serverContent !== undefined) this.onServerContent(serverContent);
    if (toolCall !== undefined) this.onToolCall(toolCall);
    if (toolCallCancellation !== undefined) {
      if (!isRecord(toolCallCancellation) || !Array.isArray(toolCallCancellation.ids)) this.malformed("unexpected shape");
      else for (const id of toolCallCancellation.ids) this.rememberCancellation(id);
    }
    if (goAway !== undefined) {
      // An unreadable timeLeft counts as "now": rolling over early is cheaper than being cut off.
      const timeLeftMs = isRecord(goAway) ? parseDurationMs(goAway.timeLeft) : null;
      this.emit({ type: "ending_soon", timeLeftMs: timeLeftMs ?? 0 });
    }
    if (sessionResumptionUpdate !== undefined) this.onResumptionUpdate(sessionResumptionUpdate);
  }

  private onResumptionUpdate(update: LiveServerSessionResumptionUpdate): void {
    if (!isRecord(update)) return this.malformed("unexpected shape");
    // resumable: false is routine (mid-generation or mid-tool-call): the last handle stays the one to use.
    if (update.resumable !== true) return;
    const handle = update.newHandle;
    if (typeof handle !== "string" || !handle || handle.length > MAX_HANDLE_CHARS) return this.malformed("unexpected shape");
    this.emit({ type: "resumption_handle", handle });
  }

  private onServerContent(content: LiveServerContent): void {
    if (!isRecord(content)) return this.malformed("unexpected shape");
    const { inputTranscription, interrupted, modelTurn, outputTranscription, turnComplete } = content;
    if (isRecord(inputTranscription) && typeof inputTranscription.text === "string") {
      this.callerTranscript.append(inputTranscription.text);
      if (inputTranscription.finished === true) this.flushCallerTranscript();
    }
    if (interrupted === true) {
      this.flushCallerTranscript();
      if (this.turn) this.turn.discarding = true;
      this.emit({ type: "caller_speech_started" });
    }
    if (modelTurn !== undefined) {
      if (!isRecord(modelTurn) || !Array.isArray(modelTurn.parts)) this.malformed("unexpected shape");
      else for (const part of modelTurn.parts) this.onModelPart(part);
    }
    if (isRecord(outputTranscription) && typeof outputTranscription.text === "string") {
      this.flushCallerTranscript();
      const turn = this.currentTurn();
      if (!turn.discarding) turn.transcript.append(outputTranscription.text);
    }
    if (turnComplete === true) this.endTurn();
  }

  private onModelPart(part: Part): void {
    if (!isRecord(part)) return this.malformed("unexpected shape");
    // Text parts (thoughts) are not spoken: only audio is forwarded.
    const { inlineData } = part;
    if (inlineData === undefined) return;
    if (!isRecord(inlineData) || typeof inlineData.data !== "string" || !OUTPUT_MIME_TYPE.test(String(inlineData.mimeType))) {
      return this.malformed("unexpected shape");
    }
    this.flushCallerTranscript(); // the model answering ends the caller's utterance
    const turn = this.currentTurn();
    if (turn.discarding) {
      this.counts.discardedAgentAudio++;
      return;
    }
    turn.sentAudio = true;
    this.emit({ type: "agent_audio", base64: inlineData.data, itemId: turn.itemId });
  }

  private onToolCall(toolCall: LiveServerToolCall): void {
    if (!isRecord(toolCall) || !Array.isArray(toolCall.functionCalls)) return this.malformed("unexpected shape");
    this.flushCallerTranscript();
    for (const call of toolCall.functionCalls) {
      if (!isRecord(call)) {
        this.malformed("unexpected shape");
        continue;
      }
      const { id, name, args } = call;
      if (typeof id !== "string" || !id || typeof name !== "string" || !name || (args !== undefined && !isRecord(args))) {
        this.malformed("unexpected shape");
        continue;
      }
      this.emit({ type: "tool_call", callId: id, name, arguments: JSON.stringify(args ?? {}) });
    }
  }

  private rememberCancellation(id: unknown): void {
    if (typeof id !== "string") return this.malformed("unexpected shape");
    this.counts.cancelledToolCalls++;
    if (this.cancelledToolCalls.size >= MAX_REMEMBERED_CANCELLATIONS) {
      const oldest = this.cancelledToolCalls.values().next().value;
      if (oldest !== undefined) this.cancelledToolCalls.delete(oldest);
    }
    this.cancelledToolCalls.add(id);
  }

  private currentTurn(): ModelTurn {
    this.turn ??= { itemId: crypto.randomUUID(), sentAudio: false, discarding: false, transcript: new TranscriptBuffer() };
    return this.turn;
  }

  private endTurn(): void {
    this.flushCallerTranscript();
    const turn = this.turn;
    if (!turn) return;
    this.turn = null;
    const text = turn.transcript.take();
    if (text) this.emit({ type: "transcript", role: "agent", text, itemId: turn.itemId });
    if (turn.sentAudio) this.emit({ type: "agent_audio_done", itemId: turn.itemId });
  }

  private flushCallerTranscript(): void {
    const text = this.callerTranscript.take();
    if (text) this.emit({ type: "transcript", role: "caller", text });
  }
}

/** A token count from the wire: a non-negative integer, else nothing counted. */
const tokenCount = (value: unknown): number => (typeof value === "number" && Number.isInteger(value) && value > 0 ? value : 0);
