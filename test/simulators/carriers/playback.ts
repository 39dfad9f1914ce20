import { msToSamples, samplesToMs } from "./audio.ts";
import type { MediaClock } from "./clock.ts";

interface PlayedSegment {
  startMs: number;
  samples: Int16Array;
}

interface PendingMark {
  name: string;
  dueMs: number;
  cancel: () => void;
}

/**
 * The carrier's playout buffer for audio the platform sends to the caller. Audio plays in order, in real (media)
 * time; a mark is echoed once everything queued before it has played, at once when nothing is queued; `clear`
 * drops what has not played yet and echoes every pending mark. What actually played lands in a recording
 * aligned to the call's media clock.
 */
export class AgentPlayback {
  readonly #clock: MediaClock;
  readonly #onMarkPlayed: (name: string) => void;
  #segments: PlayedSegment[] = [];
  #queueEndMs = 0;
  #pendingMarks: PendingMark[] = [];
  readonly #arrivalsMs: number[] = [];

  constructor(clock: MediaClock, onMarkPlayed: (name: string) => void) {
    this.#clock = clock;
    this.#onMarkPlayed = onMarkPlayed;
  }

  /** When the last queued sample finishes playing (in the past when the buffer is empty). */
  get playingUntilMs(): number {
    return this.#queueEndMs;
  }

  enqueue(samples: Int16Array): void {
    const now = this.#clock.now();
    this.#arrivalsMs.push(now);
    const startMs = Math.max(now, this.#queueEndMs);
    this.#segments.push({ startMs, samples });
    this.#queueEndMs = startMs + samplesToMs(samples.length);
  }

  mark(name: string): void {
    const now = this.#clock.now();
    if (this.#queueEndMs <= now && this.#pendingMarks.length === 0) {
      this.#onMarkPlayed(name);
      return;
    }
    const dueMs = this.#queueEndMs;
    const cancel = this.#clock.at(dueMs, () => this.#echoDueMarks());
    this.#pendingMarks.push({ name, dueMs, cancel });
  }

  clear(): void {
    this.#dropUnplayed();
    const pending = this.#pendingMarks;
    this.#pendingMarks = [];
    for (const mark of pending) {
      mark.cancel();
      this.#onMarkPlayed(mark.name);
    }
  }

  /** The call ended: audio still queued never plays and its marks are never echoed. */
  hangUp(): void {
    this.#dropUnplayed();
    for (const mark of this.#pendingMarks) mark.cancel();
    this.#pendingMarks = [];
  }

  /** When the first audio arrived at or after `ms` (media clock), if any did. */
  firstArrivalAtOrAfter(ms: number): number | undefined {
    return this.#arrivalsMs.find((arrival) => arrival >= ms);
  }

  /** How much agent audio played (or is queued to play), silence between bursts excluded. */
  playedSampleCount(): number {
    return this.#segments.reduce((total, segment) => total + segment.samples.length, 0);
  }

  /** Everything that played (or is queued to play) so far, silence where nothing played, from media time 0. */
  recording(): Int16Array {
    const end = this.#segments.reduce((max, s) => Math.max(max, msToSamples(s.startMs) + s.samples.length), 0);
    const out = new Int16Array(end);
    for (const segment of this.#segments) out.set(segment.samples, msToSamples(segment.startMs));
    return out;
  }

  #dropUnplayed(): void {
    const now = this.#clock.now();
    this.#segments = this.#segments
      .filter((segment) => segment.startMs < now)
      .map((segment) => {
        const played = Math.min(segment.samples.length, msToSamples(now - segment.startMs));
        return { startMs: segment.startMs, samples: segment.samples.subarray(0, played) };
      });
    this.#queueEndMs = Math.min(this.#queueEndMs, now);
  }

  /** Marks are echoed in the order they were sent, so one timer firing flushes every mark that is due. */
  #echoDueMarks(): void {
    const now = this.#clock.now();
    while (this.#pendingMarks.length > 0 && this.#pendingMarks[0]!.dueMs <= now) {
      const mark = this.#pendingMarks.shift()!;
      mark.cancel();
      this.#onMarkPlayed(mark.name);
    }
  }
}
