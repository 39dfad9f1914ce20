import type {
  ConversationItemInputAudioTranscriptionCompletedEvent,
  InputAudioBufferAppendEvent,
  RealtimeAudioFormats,
  RealtimeClientEvent,
  RealtimeError,
  ConversationItem as RealtimeItem,
  RealtimeResponse,
  RealtimeServerEvent,
  RealtimeSessionCreateRequest,
  ResponseAudioDeltaEvent,
  ResponseAudioDoneEvent,
  ResponseAudioTranscriptDoneEvent,
  ResponseFunctionCallArgumentsDoneEvent,
} from "openai/resources/realtime/realtime";
import { isRecord } from "../../../../workers/shared/json.ts";
import type { AudioFormat } from "../../../media/audio/audio-format.ts";
import { base64ByteLength } from "../../../media/audio/pcm16.ts";
import type { ConversationItem, ImageFrame, ProviderConnectOptions, ProviderSessionConfig } from "../provider.ts";
import { ProviderSetupError } from "../provider-socket.ts";
import { SocketProvider, type SocketProviderStats } from "../socket-provider.ts";

/**
 * OpenAI Realtime (GA) over an outbound WebSocket, inside the call's object. G.711 calls pass
 * through untouched (audio/pcmu or audio/pcma both ways); anything else uses 24 kHz PCM16, which the call's object
 * resamples. Barge-in truncation never exceeds the audio actually received for the item, so the service can never
 * answer "already shorter than".
 *
 * Longer than the ~300 lines a part aims at, on purpose: it is one vendor's whole wire protocol — setup, both
 * directions, barge-in, failure rules — and reads best in one place; its helpers are local to that protocol.
 */

export interface OpenAiRealtimeOptions extends ProviderConnectOptions {
  model?: string;
  /** A larger server message closes the socket with 1009. Counted in UTF-16 units for text frames. */
  maxInboundMessageChars?: number;
  /**
   * OpenAI ends a Realtime session after a fixed time (60 minutes): this long after the session is ready the adapter
   * announces `ending_soon`, so the conversation moves to a fresh session before the service cuts it. Off when unset.
   */
  sessionLifetimeMs?: number;
}

/** OpenAI's cap on one Realtime session. */
const SESSION_CAP_MS = 60 * 60_000;

/** What the adapter skipped or dropped instead of throwing, beyond the shared counts; for metrics and tests. */
export interface OpenAiRealtimeStats extends SocketProviderStats {
  /** Agent audio arriving for an item after the caller interrupted it: not forwarded. */
  lateAudioDropped: number;
  /** Interrupts naming an item of which no audio was received (nothing to truncate). */
  unknownInterrupts: number;
  /** Oldest history items left out of the replay (over MAX_HISTORY_ITEMS). */
  historyItemsDropped: number;
}

const DEFAULT_MODEL = "gpt-realtime";
const DEFAULT_VOICE = "marin";
const TRANSCRIPTION_MODEL = "gpt-4o-transcribe";
/** session.updated echoes instructions and tools; audio deltas are tens of KB. */
const DEFAULT_MAX_INBOUND_MESSAGE_CHARS = 1024 * 1024;
/** Items whose received audio is remembered for truncation: barge-in only ever concerns the latest few. */
const MAX_TRACKED_ITEMS = 32;
const MAX_HISTORY_ITEMS = 500;
/** Error codes after which the service ends the session (the rest leave it usable). */
const SESSION_ENDING_ERROR_CODES = new Set(["session_expired", "insufficient_quota", "invalid_api_key"]);
/** Races between our requests and the server's own turn handling; handled here, not reported. */
const CANCEL_RACE_CODE = "response_cancel_not_active";
const BUSY_CODE = "conversation_already_has_active_response";
const APPEND_TYPE: InputAudioBufferAppendEvent["type"] = "input_audio_buffer.append";

/** The beta API's names for the GA events handled here. */
type BetaServerEventType = "response.audio.delta" | "response.audio.done" | "response.audio_transcript.done";
/** Fields of a vendor event type that hold a string (when present). */
type StringKeys<T> = { [K in keyof T]-?: NonNullable<T[K]> extends string ? K : never }[keyof T] & string;

/** The named string fields of a server event (names checked against its vendor type), or undefined when any is missing. */
function stringFields<T, K extends StringKeys<T>>(message: Record<string, unknown>, ...keys: K[]): Record<K, string> | undefined {
  for (const key of keys) if (typeof message[key] !== "string") return undefined;
  return message as Record<K, string>;
}

/** The wire format for a call's audio, and the AudioFormat it is in our vocabulary. */
function formatsFor(callAudio: AudioFormat): { wire: RealtimeAudioFormats; format: AudioFormat } {
  if (callAudio.encoding === "pcmu") return { wire: { type: "audio/pcmu" }, format: callAudio };
  if (callAudio.encoding === "pcma") return { wire: { type: "audio/pcma" }, format: callAudio };
  return { wire: { type: "audio/pcm", rate: 24000 }, format: { encoding: "pcm16", sampleRate: 24000 } };
}

function sessionFor(config: ProviderSessionConfig, model: string, wire: RealtimeAudioFormats): RealtimeSessionCreateRequest {
  return {
    type: "realtime",
    model,
    output_modalities: ["audio"],
    instructions: config.instructions,
    audio: {
      input: {
        format: wire,
        transcription: { model: TRANSCRIPTION_MODEL },
        turn_detection: {
          type: "server_vad",
          threshold: 0.5,
          prefix_padding_ms: 300,
          silence_duration_ms: 500,
          create_response: true,
          interrupt_response: true,
        },
      },
      output: { format: wire, voice: config.voice ?? DEFAULT_VOICE },
    },
    tools: config.tools.map(({ name, description, parameters }) => ({ type: "function", name, description, parameters })),
    tool_choice: "auto",
  };
}

function historyItems(item: ConversationItem): RealtimeItem[] {
  if (item.kind === "message") {
    return item.role === "caller"
      ? [{ type: "message", role: "user", content: [{ type: "input_text", text: item.text }] }]
      : [{ type: "message", role: "assistant", content: [{ type: "output_text", text: item.text }] }];
  }
  return [
    { type: "function_call", call_id: item.callId, name: item.name, arguments: item.arguments },
    { type: "function_call_output", call_id: item.callId, output: item.result },
  ];
}

interface ItemAudio {
  responseId: string | null;
  receivedMs: number;
  doneReported: boolean;
  /** Set once the caller interrupted the item: later audio for it is dropped. */
  truncatedToMs: number | null;
}

export class OpenAiRealtimeProvider extends SocketProvider {
  readonly name = "openai";
  private readonly options: OpenAiRealtimeOptions;
  private readonly items = new Map<string, ItemAudio>();
  /** The item the latest delta was for: a reply's deltas come in a run, so most need no lookup in `items`. */
  private latestItem: { id: string; audio: ItemAudio } | null = null;
  private readonly transcribedItems = new Set<string>();
  private readonly counts = { lateAudioDropped: 0, unknownInterrupts: 0, historyItemsDropped: 0 };
  private format: AudioFormat = { encoding: "pcm16", sampleRate: 24000 };
  /** Audio bytes per millisecond of the session's format, for the received-audio tally. */
  private bytesPerMs = 48;
  private model = DEFAULT_MODEL;
  private wire: RealtimeAudioFormats = { type: "audio/pcm", rate: 24000 };
  private activeResponseId: string | null = null;
  /** The active response is already being cancelled (by server VAD at speech start, or by us). */
  private activeResponseCancelled = false;
  private responseWanted = false;
  private endingSoonTimer: ReturnType<typeof setTimeout> | null = null;
  /** Screen images sent in this session, and the item holding the latest (the only one kept in the conversation). */
  private screenImages = 0;
  private screenItem: string | null = null;

  constructor(options: OpenAiRealtimeOptions) {
    super(options.onEvent, { maxInboundSize: options.maxInboundMessageChars ?? DEFAULT_MAX_INBOUND_MESSAGE_CHARS });
    this.options = options;
  }

  get inputFormat(): AudioFormat {
    return this.format;
  }

  get outputFormat(): AudioFormat {
    return this.format;
  }

  get stats(): OpenAiRealtimeStats {
    return { ...this.baseCounts, ...this.counts };
  }

  // ── setup ────────────────────────────────────────────────────────────────────────────────────────────────

  protected endpoint(config: ProviderSessionConfig): { url: string; headers: Record<string, string> } {
    const { wire, format } = formatsFor(config.callAudio);
    this.wire = wire;
    this.format = format;
    this.bytesPerMs = format.encoding === "pcm16" ? (format.sampleRate * 2) / 1000 : format.sampleRate / 1000;
    this.model = this.options.model ?? DEFAULT_MODEL;
    const url = new URL(this.options.url);
    url.searchParams.set("model", this.model);
    return { url: url.toString(), headers: { Authorization: `Bearer ${this.options.apiKey}`, "X-Correlation-ID": config.correlationId } };
  }

  /** Sent at once (session.created need not be awaited); its session.updated answer marks the session ready. */
  protected opened(config: ProviderSessionConfig): void {
    this.sendJson({ type: "session.update", session: sessionFor(config, this.model, this.wire) } satisfies RealtimeClientEvent);
  }

  protected setupMessage(message: Record<string, unknown>): void {
    if (typeof message.type !== "string") return this.malformed("message without type");
    if (message.type === "session.updated") this.setupDone();
    else if (message.type === "error") this.serverError(message);
  }

  /** The conversation so far goes in before any caller audio; then OpenAI's rollover rule is armed. */
  protected override ready(config: ProviderSessionConfig): void {
    const history = config.history.slice(-MAX_HISTORY_ITEMS);
    this.counts.historyItemsDropped = config.history.length - history.length;
    for (const item of history.flatMap(historyItems)) this.send({ type: "conversation.item.create", item });
    this.announceEndingSoon();
  }

  /** OpenAI's own rollover rule, kept here: the session announces its end before the service's cap cuts it. */
  private announceEndingSoon(): void {
    const lifetime = this.options.sessionLifetimeMs;
    if (lifetime === undefined) return;
    this.endingSoonTimer = setTimeout(
      () => this.emit({ type: "ending_soon", timeLeftMs: Math.max(0, SESSION_CAP_MS - lifetime) }),
      lifetime,
    );
  }

  protected override stopped(): void {
    if (this.endingSoonTimer) clearTimeout(this.endingSoonTimer);
    this.endingSoonTimer = null;
  }

  // ── us → server ──────────────────────────────────────────────────────────────────────────────────────────

  sendAudio(base64: string): void {
    if (!this.isOpenForUse()) return;
    // Per-frame path: base64 needs no JSON escaping, so this skips stringifying a fresh object for every frame.
    this.sendRaw(`{"type":"${APPEND_TYPE}","audio":"${base64}"}`);
  }

  sendText(text: string): void {
    if (!this.isOpenForUse()) return;
    const content = [{ type: "input_text" as const, text }];
    this.send({ type: "conversation.item.create", item: { type: "message", role: "user", content } });
    this.requestResponse();
  }

  /** OpenAI matches the output to its call by call_id; the name is not part of the item. */
  sendToolResult(callId: string, _name: string, result: string): void {
    if (!this.isOpenForUse()) return;
    this.send({ type: "conversation.item.create", item: { type: "function_call_output", call_id: callId, output: result } });
    this.requestResponse();
  }

  /** A system message, and no `response.create`: the model takes it as an instruction, not a turn to answer. */
  guide(text: string): void {
    if (!this.isOpenForUse()) return;
    this.send({ type: "conversation.item.create", item: { type: "message", role: "system", content: [{ type: "input_text", text }] } });
  }

  /** Items the way history is replayed; no `response.create`: the model answers the caller's next turn with them known. */
  addContext(items: ConversationItem[]): void {
    if (!this.isOpenForUse()) return;
    for (const item of items.flatMap(historyItems)) this.send({ type: "conversation.item.create", item });
  }

  /**
   * The caller's screen as a user item of its own, with no `response.create`: the model sees it when it next answers.
   * The item before it is deleted: at one image a second the conversation would otherwise fill with stale screens
   * (each costing input tokens on every later response) until the service truncated the conversation itself.
   */
  sendImage(image: ImageFrame): void {
    if (!this.isOpenForUse()) return;
    const previous = this.screenItem;
    this.screenItem = `screen_${++this.screenImages}`;
    const content = [{ type: "input_image" as const, image_url: `data:${image.mimeType};base64,${image.base64}` }];
    this.send({ type: "conversation.item.create", item: { id: this.screenItem, type: "message", role: "user", content } });
    if (previous) this.send({ type: "conversation.item.delete", item_id: previous });
  }

  interrupt(itemId: string, heardMs: number): void {
    if (!this.isOpenForUse()) return;
    if (this.activeResponseId !== null && !this.activeResponseCancelled) {
      this.activeResponseCancelled = true;
      this.send({ type: "response.cancel", response_id: this.activeResponseId });
    }
    const item = this.items.get(itemId);
    if (!item) {
      this.counts.unknownInterrupts++;
      return;
    }
    const heard = Number.isFinite(heardMs) ? Math.max(0, heardMs) : item.receivedMs;
    // Never past what arrived: the service refuses a truncation beyond the audio it has for the item.
    const audioEndMs = Math.floor(Math.min(heard, item.receivedMs));
    if (item.truncatedToMs !== null && item.truncatedToMs <= audioEndMs) return;
    item.truncatedToMs = audioEndMs;
    item.receivedMs = audioEndMs;
    this.send({ type: "conversation.item.truncate", item_id: itemId, content_index: 0, audio_end_ms: audioEndMs });
  }

  /** The owner's sends need a ready session; before connect() resolves or after a close they are dropped. */
  private isOpenForUse(): boolean {
    if (this.isOpen) return true;
    this.baseCounts.droppedSends++;
    return false;
  }

  private requestResponse(): void {
    if (this.activeResponseId === null) this.send({ type: "response.create" });
    else this.responseWanted = true; // one response at a time: ask when the current one is done
  }

  private send(event: RealtimeClientEvent): void {
    this.sendJson(event);
  }

  // ── server → us ──────────────────────────────────────────────────────────────────────────────────────────

  protected message(message: Record<string, unknown>): void {
    if (typeof message.type !== "string") return this.malformed("message without type");
    this.dispatch(message, message.type as RealtimeServerEvent["type"] | BetaServerEventType);
  }

  private dispatch(message: Record<string, unknown>, type: RealtimeServerEvent["type"] | BetaServerEventType): void {
    switch (type) {
      case "response.output_audio.delta":
      case "response.audio.delta":
        return this.agentAudio(message);
      case "response.output_audio.done":
      case "response.audio.done": {
        const done = stringFields<ResponseAudioDoneEvent, "item_id">(message, "item_id");
        if (done) this.reportAudioDone(done.item_id);
        else this.malformed("missing field");
        return;
      }
      case "response.output_audio_transcript.done":
      case "response.audio_transcript.done": {
        const done = stringFields<ResponseAudioTranscriptDoneEvent, "item_id" | "transcript">(message, "item_id", "transcript");
        if (done) this.agentTranscript(done.item_id, done.transcript);
        else this.malformed("missing field");
        return;
      }
      case "response.output_item.done":
        return this.outputItemDone(message);
      case "conversation.item.input_audio_transcription.completed": {
        type Completed = ConversationItemInputAudioTranscriptionCompletedEvent;
        const heard = stringFields<Completed, "item_id" | "transcript">(message, "item_id", "transcript");
        if (heard) this.emit({ type: "transcript", role: "caller", text: heard.transcript, itemId: heard.item_id });
        else this.malformed("missing field");
        return;
      }
      case "input_audio_buffer.speech_started":
        // interrupt_response is on: the service cancels the active response itself.
        if (this.activeResponseId !== null) this.activeResponseCancelled = true;
        return this.emit({ type: "caller_speech_started" });
      case "input_audio_buffer.speech_stopped":
        return this.emit({ type: "caller_speech_stopped" });
      case "response.function_call_arguments.done": {
        type Done = ResponseFunctionCallArgumentsDoneEvent;
        const call = stringFields<Done, "call_id" | "name" | "arguments">(message, "call_id", "name", "arguments");
        if (call) this.emit({ type: "tool_call", callId: call.call_id, name: call.name, arguments: call.arguments });
        else this.malformed("missing field");
        return;
      }
      case "response.created": {
        const response = stringFields<RealtimeResponse, "id">(isRecord(message.response) ? message.response : {}, "id");
        if (!response) {
          this.malformed("missing field");
          return;
        }
        this.activeResponseId = response.id;
        this.activeResponseCancelled = false;
        return;
      }
      case "response.done":
        return this.responseDone(message);
      case "error":
        return this.serverError(message);
      default:
        return; // session, item and rate-limit bookkeeping the call does not need
    }
  }

  private agentAudio(message: Record<string, unknown>): void {
    const delta = stringFields<ResponseAudioDeltaEvent, "item_id" | "delta">(message, "item_id", "delta");
    if (!delta) {
      this.malformed("missing field");
      return;
    }
    const latest = this.latestItem;
    let item = latest?.id === delta.item_id ? latest.audio : this.items.get(delta.item_id);
    if (!item) {
      const responseId = typeof message.response_id === "string" ? message.response_id : this.activeResponseId;
      item = { responseId, receivedMs: 0, doneReported: false, truncatedToMs: null };
      this.items.set(delta.item_id, item);
      // The newest item is never the one evicted, so `latestItem` always names a tracked item.
      if (this.items.size > MAX_TRACKED_ITEMS) this.items.delete(this.items.keys().next().value ?? "");
    }
    if (item !== latest?.audio) this.latestItem = { id: delta.item_id, audio: item };
    if (item.truncatedToMs !== null) {
      this.counts.lateAudioDropped++;
      return;
    }
    item.receivedMs += base64ByteLength(delta.delta) / this.bytesPerMs;
    this.emit({ type: "agent_audio", base64: delta.delta, itemId: delta.item_id });
  }

  /** One agent line per item: from `output_audio_transcript.done`, or from the item itself when that never came. */
  private agentTranscript(itemId: string, text: string): void {
    if (this.transcribedItems.has(itemId)) return;
    this.transcribedItems.add(itemId);
    if (this.transcribedItems.size > MAX_TRACKED_ITEMS) this.transcribedItems.delete(this.transcribedItems.values().next().value ?? "");
    this.emit({ type: "transcript", role: "agent", text, itemId });
  }

  /** A reply cut short (barge-in, cancel) sends no transcript `done`: what was said is in its finished item. */
  private outputItemDone(message: Record<string, unknown>): void {
    const item = isRecord(message.item) ? message.item : undefined;
    if (item?.type !== "message" || item.role !== "assistant" || typeof item.id !== "string" || !Array.isArray(item.content)) return;
    const transcript = item.content
      .map((part: unknown) => (isRecord(part) && typeof part.transcript === "string" ? part.transcript : ""))
      .join("");
    if (transcript) this.agentTranscript(item.id, transcript);
  }

  private reportAudioDone(itemId: string): void {
    const item = this.items.get(itemId);
    if (!item || item.doneReported) return;
    item.doneReported = true;
    this.emit({ type: "agent_audio_done", itemId });
  }

  private responseDone(message: Record<string, unknown>): void {
    const response = isRecord(message.response) ? message.response : undefined;
    const id = response && typeof response.id === "string" ? response.id : null;
    if (id === null) {
      this.malformed("missing field");
      return;
    }
    if (id === this.activeResponseId) this.activeResponseId = null;
    // A cancelled response sends no output_audio.done: its items end here.
    for (const [itemId, item] of this.items) if (item.responseId === id) this.reportAudioDone(itemId);
    const usage = isRecord(response?.usage) ? response.usage : undefined;
    if (usage) this.emit({ type: "usage", inputTokens: tokenCount(usage.input_tokens), outputTokens: tokenCount(usage.output_tokens) });
    const details = isRecord(response?.status_details) ? response.status_details : undefined;
    if (response?.status === "failed" && isRecord(details?.error)) {
      const { code, message: text } = details.error;
      const failure = typeof code === "string" ? code : "response_failed";
      this.emit({ type: "error", code: failure, message: typeof text === "string" ? text : "", fatal: false });
    }
    if (this.responseWanted && this.activeResponseId === null) {
      this.responseWanted = false;
      this.send({ type: "response.create" });
    }
  }

  private serverError(message: Record<string, unknown>): void {
    const details = isRecord(message.error) ? message.error : {};
    const error = stringFields<RealtimeError, "type" | "message">(details, "type", "message");
    if (!error) {
      this.malformed("missing field");
      return;
    }
    const code = typeof details.code === "string" ? details.code : error.type;
    if (this.isSettingUp) return this.setupFailed(new ProviderSetupError(code, error.message));
    if (code === CANCEL_RACE_CODE) return;
    if (code === BUSY_CODE) {
      this.responseWanted = true; // asked while the server had just started one: ask again when it is done
      return;
    }
    this.emit({ type: "error", code, message: error.message, fatal: SESSION_ENDING_ERROR_CODES.has(code) });
  }
}

/** Opens a configured session: resolves once the service is ready for audio, rejects on refusal or setup failure. */
export async function connectOpenAiRealtime(
  options: OpenAiRealtimeOptions,
  config: ProviderSessionConfig,
): Promise<OpenAiRealtimeProvider> {
  const provider = new OpenAiRealtimeProvider(options);
  await provider.connect(config);
  return provider;
}

/** A token count from the wire: a non-negative integer, else nothing counted. */
const tokenCount = (value: unknown): number => (typeof value === "number" && Number.isInteger(value) && value > 0 ? value : 0);
