import { createHash } from "node:crypto";

/**
 * What the simulator remembers about each provider connection, for assertions and the latency benchmark.
 * Every list is bounded (a ring keeping the most recent entries, with a count of what it dropped). Timestamps
 * are epoch milliseconds with sub-millisecond precision (`performance.timeOrigin + performance.now()`), so they
 * compare across processes on one machine.
 */

export type ProviderName = "openai" | "gemini" | "deepgram";

export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Recorded client messages keep at most this much JSON each; bigger ones are summarised. */
const MAX_RECORDED_MESSAGE_CHARS = 64 * 1024;

/** `value` itself, or a summary when its JSON is too big to keep (a message carrying audio, say). */
function keepable(value: unknown): unknown {
  const json = JSON.stringify(value) ?? "";
  if (json.length <= MAX_RECORDED_MESSAGE_CHARS) return value;
  return { truncatedJsonChars: json.length, preview: json.slice(0, 1024) };
}

export class BoundedLog<T> {
  readonly #capacity: number;
  readonly #prepare: (entry: T) => T;
  #entries: T[] = [];
  #dropped = 0;

  constructor(capacity: number, prepare: (entry: T) => T = (entry) => entry) {
    this.#capacity = capacity;
    this.#prepare = prepare;
  }

  push(entry: T): void {
    this.#entries.push(this.#prepare(entry));
    // Trim in batches so a full ring costs O(1) amortised per push.
    if (this.#entries.length > this.#capacity * 2) {
      const excess = this.#entries.length - this.#capacity;
      this.#entries = this.#entries.slice(excess);
      this.#dropped += excess;
    }
  }

  snapshot(): BoundedList<T> {
    const excess = Math.max(0, this.#entries.length - this.#capacity);
    return { entries: this.#entries.slice(excess), dropped: this.#dropped + excess };
  }
}

export interface BoundedList<T> {
  entries: T[];
  /** Older entries that no longer fit. */
  dropped: number;
}

export interface TimedType {
  type: string;
  at: number;
}

export interface TurnRecord {
  /** 1-based caller turn (utterance detected in the audio). */
  turn: number;
  transcript: string;
  /** Caller audio position where speech started / stopped, in ms since the connection's first audio. */
  speechStartedAudioMs: number;
  speechStoppedAudioMs: number;
  /** When the simulator decided the caller had finished (end of speech detected). */
  speechStoppedAt: number;
}

export interface ResponseRecord {
  id: string;
  kind: "audio" | "tool-call";
  /** Caller turn this answers (0 before any caller turn: greetings, text-only exchanges). */
  turn: number;
  text: string;
  startedAt: number;
  firstAudioAt: number | null;
  finishedAt: number | null;
  outcome: "in-progress" | "completed" | "interrupted" | "cancelled";
  /** Audio actually sent, in ms. */
  audioMs: number;
}

/** A frame's first four bytes as one number: benchmarks tag frames there to tell lost, duplicated and reordered ones apart. */
export function headOf(bytes: Uint8Array): number {
  return bytes.length < 4 ? -1 : ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

export interface AudioChunkRecord {
  at: number;
  /** headOf(the chunk's audio bytes). */
  head: number;
  bytes: number;
  durationMs: number;
  responseId: string;
}

/** An image the client sent (OpenAI `input_image`, Gemini `realtimeInput.video`): its type, size and digest, not its bytes. */
export interface ImageRecord {
  mimeType: string;
  bytes: number;
  /** SHA-256 of the decoded image, hex: a test compares it with the frame it sent. */
  sha256: string;
  at: number;
}

export interface ConnectionSnapshot {
  id: string;
  provider: ProviderName;
  key: string;
  path: string;
  /** The upgrade URL's query, with any API key redacted. */
  query: Record<string, string>;
  /** Headers worth asserting on; credentials appear only as `<scheme> [redacted]`. */
  headers: Record<string, string>;
  /** HTTP status the upgrade was refused with, or null when it was accepted. */
  refusedWithStatus: number | null;
  connectedAt: number;
  closedAt: number | null;
  close: { code: number; reason: string; by: "client" | "simulator" | "drop" } | null;
  /** First configuration message: OpenAI `session.update`, Gemini `setup`, Deepgram `Settings`. */
  setup: unknown;
  /** Later configuration messages (further `session.update`s, `UpdatePrompt`, …). */
  configUpdates: BoundedList<unknown>;
  /** Every client message type in order (OpenAI/Gemini/Deepgram JSON types; `binary-audio` for raw frames). */
  clientMessages: BoundedList<TimedType>;
  clientMessageCounts: Record<string, number>;
  serverMessages: BoundedList<TimedType>;
  /** Conversation content the client gave the provider: items, clientContent turns, context, injections. */
  history: BoundedList<unknown>;
  turns: BoundedList<TurnRecord>;
  responses: BoundedList<ResponseRecord>;
  toolCalls: BoundedList<{ id: string; name: string; arguments: unknown; at: number }>;
  functionCallOutputs: BoundedList<{ id: string; name: string | null; output: unknown; at: number }>;
  truncations: BoundedList<{ itemId: string; audioEndMs: number; generatedMs: number; accepted: boolean; at: number }>;
  bargeIns: BoundedList<{ at: number; audioMs: number; agentAudioPlaying: boolean; responseInProgress: boolean }>;
  audioIn: { frames: number; bytes: number; frameTimes: BoundedList<number>; frameHeads: BoundedList<number> };
  audioOut: { chunks: number; bytes: number; ms: number; chunkTimes: BoundedList<AudioChunkRecord> };
  images: BoundedList<ImageRecord>;
  /** Gemini: the resumption handle presented in `setup` and whether the simulator knew it. */
  resumption: { requestedHandle: string | null; known: boolean; issuedHandles: string[] } | null;
  faults: BoundedList<{ kind: string; at: number }>;
  /** Messages a stall swallowed. */
  suppressedMessages: number;
}

export class ConnectionRecorder {
  readonly id: string;
  readonly provider: ProviderName;
  readonly key: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly headers: Record<string, string>;
  readonly refusedWithStatus: number | null;
  readonly connectedAt = preciseNow();
  closedAt: number | null = null;
  close: ConnectionSnapshot["close"] = null;
  #setup: unknown = null;
  resumption: ConnectionSnapshot["resumption"] = null;
  suppressedMessages = 0;
  readonly configUpdates: BoundedLog<unknown>;
  readonly clientMessages: BoundedLog<TimedType>;
  readonly clientMessageCounts: Record<string, number> = {};
  readonly serverMessages: BoundedLog<TimedType>;
  readonly history: BoundedLog<unknown>;
  readonly turns: BoundedLog<TurnRecord>;
  readonly responses: BoundedLog<ResponseRecord>;
  readonly toolCalls: BoundedLog<{ id: string; name: string; arguments: unknown; at: number }>;
  readonly functionCallOutputs: BoundedLog<{ id: string; name: string | null; output: unknown; at: number }>;
  readonly truncations: BoundedLog<ConnectionSnapshot["truncations"]["entries"][number]>;
  readonly bargeIns: BoundedLog<ConnectionSnapshot["bargeIns"]["entries"][number]>;
  readonly faults: BoundedLog<{ kind: string; at: number }>;
  readonly audioIn = { frames: 0, bytes: 0 };
  readonly audioInTimes: BoundedLog<number>;
  readonly audioInHeads: BoundedLog<number>;
  readonly audioOut = { chunks: 0, bytes: 0, ms: 0 };
  readonly audioOutChunks: BoundedLog<AudioChunkRecord>;
  readonly images: BoundedLog<ImageRecord>;

  constructor(init: {
    id: string;
    provider: ProviderName;
    key: string;
    path: string;
    query: Record<string, string>;
    headers: Record<string, string>;
    refusedWithStatus: number | null;
    maxEntries: number;
  }) {
    this.id = init.id;
    this.provider = init.provider;
    this.key = init.key;
    this.path = init.path;
    this.query = init.query;
    this.headers = init.headers;
    this.refusedWithStatus = init.refusedWithStatus;
    const log = <T>() => new BoundedLog<T>(init.maxEntries);
    const messageLog = () => new BoundedLog<unknown>(init.maxEntries, keepable);
    this.configUpdates = messageLog();
    this.clientMessages = log();
    this.serverMessages = log();
    this.history = messageLog();
    this.turns = log();
    this.responses = log();
    this.toolCalls = log();
    this.functionCallOutputs = log();
    this.truncations = log();
    this.bargeIns = log();
    this.faults = log();
    this.audioInTimes = log();
    this.audioInHeads = log();
    this.audioOutChunks = log();
    this.images = log();
  }

  get setup(): unknown {
    return this.#setup;
  }

  set setup(message: unknown) {
    this.#setup = keepable(message);
  }

  clientMessage(type: string): void {
    this.clientMessages.push({ type, at: preciseNow() });
    this.clientMessageCounts[type] = (this.clientMessageCounts[type] ?? 0) + 1;
  }

  audioFrameIn(bytes: Uint8Array): void {
    this.audioIn.frames++;
    this.audioIn.bytes += bytes.byteLength;
    this.audioInTimes.push(preciseNow());
    this.audioInHeads.push(headOf(bytes));
  }

  audioChunkOut(chunk: AudioChunkRecord): void {
    this.audioOut.chunks++;
    this.audioOut.bytes += chunk.bytes;
    this.audioOut.ms += chunk.durationMs;
    this.audioOutChunks.push(chunk);
  }

  image(mimeType: string, bytes: Uint8Array): void {
    this.images.push({ mimeType, bytes: bytes.byteLength, sha256: createHash("sha256").update(bytes).digest("hex"), at: preciseNow() });
  }

  fault(kind: string): void {
    this.faults.push({ kind, at: preciseNow() });
  }

  snapshot(): ConnectionSnapshot {
    // A structured clone, so callers can neither see later mutation nor mutate the record.
    return structuredClone({
      id: this.id,
      provider: this.provider,
      key: this.key,
      path: this.path,
      query: this.query,
      headers: this.headers,
      refusedWithStatus: this.refusedWithStatus,
      connectedAt: this.connectedAt,
      closedAt: this.closedAt,
      close: this.close,
      setup: this.setup,
      configUpdates: this.configUpdates.snapshot(),
      clientMessages: this.clientMessages.snapshot(),
      clientMessageCounts: this.clientMessageCounts,
      serverMessages: this.serverMessages.snapshot(),
      history: this.history.snapshot(),
      turns: this.turns.snapshot(),
      responses: this.responses.snapshot(),
      toolCalls: this.toolCalls.snapshot(),
      functionCallOutputs: this.functionCallOutputs.snapshot(),
      truncations: this.truncations.snapshot(),
      bargeIns: this.bargeIns.snapshot(),
      audioIn: { ...this.audioIn, frameTimes: this.audioInTimes.snapshot(), frameHeads: this.audioInHeads.snapshot() },
      audioOut: { ...this.audioOut, chunkTimes: this.audioOutChunks.snapshot() },
      images: this.images.snapshot(),
      resumption: this.resumption,
      faults: this.faults.snapshot(),
      suppressedMessages: this.suppressedMessages,
    });
  }
}

const MAX_CONNECTIONS_PER_KEY = 200;
const MAX_KEYS = 1000;

/** Connection records by correlation key, oldest keys evicted first. */
export class SessionStore {
  readonly #byKey = new Map<string, BoundedLog<ConnectionRecorder>>();

  add(recorder: ConnectionRecorder): void {
    let log = this.#byKey.get(recorder.key);
    if (!log) {
      if (this.#byKey.size >= MAX_KEYS) {
        const oldest = this.#byKey.keys().next().value;
        if (oldest !== undefined) this.#byKey.delete(oldest);
      }
      log = new BoundedLog(MAX_CONNECTIONS_PER_KEY);
      this.#byKey.set(recorder.key, log);
    }
    log.push(recorder);
  }

  snapshots(key: string): ConnectionSnapshot[] {
    return (this.#byKey.get(key)?.snapshot().entries ?? []).map((recorder) => recorder.snapshot());
  }

  delete(key: string): void {
    this.#byKey.delete(key);
  }

  clear(): void {
    this.#byKey.clear();
  }
}
