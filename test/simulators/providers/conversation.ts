import type { AudioFormat } from "./audio.ts";
import { bytesPerSample, bytesToMs, encodeAudio, synthesizeSpeech } from "./audio.ts";
import type { TimerSet } from "./connection.ts";
import type { Scenario, ToolCallScript } from "./scenarios.ts";

/**
 * The scripted side of a conversation, common to the three providers: what the caller "said" in each turn, what
 * the agent answers, when it calls a tool; and the agent's audio, streamed ahead of real time while a playback
 * clock tracks what the far end is still playing.
 */

/** Survives a Gemini session resumption, so a resumed conversation continues where it was. */
export interface ConversationProgress {
  callerTurns: number;
  agentReplies: number;
  toolCallTurnsDone: number[];
}

function freshProgress(): ConversationProgress {
  return { callerTurns: 0, agentReplies: 0, toolCallTurnsDone: [] };
}

export class ConversationScript {
  readonly #scenario: Scenario;
  readonly progress: ConversationProgress;

  constructor(scenario: Scenario, progress: ConversationProgress = freshProgress()) {
    this.#scenario = scenario;
    this.progress = progress;
  }

  get currentTurn(): number {
    return this.progress.callerTurns;
  }

  /** A caller utterance ended: its turn number and scripted transcript. */
  nextCallerTurn(): { turn: number; transcript: string } {
    const turn = ++this.progress.callerTurns;
    return { turn, transcript: this.#scenario.callerTranscripts?.[turn - 1] ?? `caller turn ${turn}` };
  }

  /** The agent's next utterance. */
  nextReply(): string {
    const reply = ++this.progress.agentReplies;
    return this.#scenario.replies?.[reply - 1] ?? `agent reply ${reply}`;
  }

  /** The tool call the model makes for the current turn, once: after its output the model answers in audio. */
  takeToolCall(): ToolCallScript | undefined {
    const turn = this.progress.callerTurns;
    if (turn === 0 || this.progress.toolCallTurnsDone.includes(turn)) return undefined;
    const call = this.#scenario.toolCalls?.find((candidate) => candidate.onTurn === turn);
    if (call) this.progress.toolCallTurnsDone.push(turn);
    return call;
  }
}

/**
 * What the far end is still playing, from what was sent: each chunk plays after the previous one (or at once if
 * playback had drained). Barge-in means caller speech while this clock says audio is playing.
 */
export class PlaybackClock {
  #playingUntil = 0;

  chunkSent(durationMs: number): void {
    this.#playingUntil = Math.max(this.#playingUntil, performance.now()) + durationMs;
  }

  get isPlaying(): boolean {
    return performance.now() < this.#playingUntil;
  }

  /** The client flushed its playback (interruption). */
  reset(): void {
    this.#playingUntil = 0;
  }
}

export interface SpeechChunk {
  bytes: Uint8Array;
  index: number;
  count: number;
  durationMs: number;
}

/** Agent audio for one reply, sent in fixed-length chunks at `speedFactor` × real time. */
export class AgentSpeech {
  readonly #chunks: Uint8Array[];
  readonly #format: AudioFormat;
  readonly #intervalMs: number;
  readonly #timers: TimerSet;
  #next = 0;
  #cancelled = false;
  #cancelTimer: (() => void) | undefined;

  constructor(text: string, format: AudioFormat, options: { chunkMs: number; speedFactor: number; timers: TimerSet }) {
    this.#format = format;
    this.#timers = options.timers;
    this.#intervalMs = options.chunkMs / options.speedFactor;
    const audio = encodeAudio(synthesizeSpeech(text, format.sampleRate), format.encoding);
    // Whole samples per chunk, so PCM16 chunks never split a sample.
    const chunkBytes = Math.max(1, Math.round((options.chunkMs * format.sampleRate) / 1000)) * bytesPerSample(format.encoding);
    this.#chunks = [];
    for (let offset = 0; offset < audio.byteLength; offset += chunkBytes) {
      this.#chunks.push(audio.subarray(offset, offset + chunkBytes));
    }
  }

  /**
   * Streams every chunk through `onChunk`, then calls `onDone` (not after `cancel`). Chunk i is due at
   * start + i × interval, so timer lateness does not accumulate.
   */
  start(onChunk: (chunk: SpeechChunk) => void, onDone: () => void): void {
    const startedAt = performance.now();
    const tick = () => {
      this.#cancelTimer = undefined;
      const bytes = this.#chunks[this.#next];
      if (!bytes || this.#cancelled) return;
      const durationMs = bytesToMs(bytes.byteLength, this.#format);
      const index = this.#next++;
      onChunk({ bytes, index, count: this.#chunks.length, durationMs });
      // onChunk may have cancelled (a fault closed the connection, say).
      if (this.#cancelled) return;
      if (this.#next >= this.#chunks.length) onDone();
      else this.#cancelTimer = this.#timers.after(startedAt + this.#next * this.#intervalMs - performance.now(), tick);
    };
    tick();
  }

  /** Stops sending; what was sent stays sent. */
  cancel(): void {
    this.#cancelled = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }
}

/**
 * The next piece of `text` to emit with audio chunk `chunkIndex` of `chunkCount`, given `emitted` characters
 * already sent: transcript deltas keep pace with the audio they describe.
 */
export function progressiveText(text: string, chunkIndex: number, chunkCount: number, emitted: number): string {
  const target = Math.round((text.length * (chunkIndex + 1)) / chunkCount);
  return text.slice(emitted, Math.max(emitted, target));
}
