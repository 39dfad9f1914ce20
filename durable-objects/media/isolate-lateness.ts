import { yieldToSockets } from "../../workers/shared/yield-to-sockets.ts";

/**
 * How far behind real time this isolate reads its calls' audio. Every call in an isolate shares its one thread; past
 * the thread's capacity the frames queue — in workerd's event loop and in the sockets' buffers — and every call hears
 * its audio that much later (test/bench/FINDINGS.md, items 33–35). Two measures, taken where they cost nothing:
 *
 * - Each carrier stream's lateness, from the carrier's own clock: a media frame says when it was sent (ms since the
 *   stream started), so (local clock − carrier clock) is the frame's transit plus the queue it waited in. The least
 *   of it over the stream, less the isolate's lateness when the stream was first sampled, is the transit alone; a
 *   sample minus that is the queue. Sampled once per SAMPLE_EVERY frames (a second of audio), on the per-frame path:
 *   a count, and a subtraction when it comes round. The isolate's is the median of its streams' (at least
 *   MIN_STREAMS), so one stream with a bad clock moves nothing.
 * - The wait for workerd's next socket poll, measured on the way in of each new session (yield-to-sockets.ts):
 *   workerd's clock stands still while JavaScript runs and moves on when the event loop polls, so the wait is the
 *   loop's turn — long when its queue is.
 */

const SAMPLE_EVERY = 50;
/** A stream's sample counts this long: one whose frames stopped (a call on hold, a stream gone) drops out. */
const FRESH_MS = 3_000;
const MIN_STREAMS = 3;
/** How long one long poll wait counts for the sessions that come after it (a short one can fall between long ones). */
const REMEMBERED_MS = 1_000;

// Module scope: shared by every object in the isolate, as the thread is.
const sampled = new Set<StreamLateness>();
let longestWait = { ms: 0, at: Number.NEGATIVE_INFINITY };

/** One carrier stream's lateness (its audio frames' own timestamps against the local clock). */
export class StreamLateness {
  private frames = 0;
  private leastOffset = Number.POSITIVE_INFINITY;
  lateMs = 0;
  sampledAt = 0;

  /** Per audio frame: `sentMs` is the frame's timestamp (ms since the stream started), when the carrier gave one. */
  heard(sentMs: number | undefined): void {
    if (sentMs === undefined || ++this.frames % SAMPLE_EVERY !== 0) return;
    const now = Date.now();
    const offset = now - sentMs;
    // A stream that starts while the isolate is behind starts that far behind: its own least offset would count the
    // backlog as transit, and as such streams became the majority their median hid the backlog it was meant to show
    // (test/bench/FINDINGS.md, item 36). Later samples can only lower the baseline to what the stream itself shows.
    if (this.leastOffset === Number.POSITIVE_INFINITY) this.leastOffset = offset - streamsLateMs(now);
    else if (offset < this.leastOffset) this.leastOffset = offset;
    this.lateMs = offset - this.leastOffset;
    this.sampledAt = now;
    sampled.add(this);
  }

  /** The stream closed: its samples no longer speak for the isolate. */
  ended(): void {
    sampled.delete(this);
  }
}

/** The median lateness of the streams sampled lately (0 with fewer than MIN_STREAMS); drops the stale ones. */
function streamsLateMs(now: number): number {
  const lateness: number[] = [];
  for (const stream of sampled) {
    if (now - stream.sampledAt > FRESH_MS) sampled.delete(stream);
    else lateness.push(stream.lateMs);
  }
  if (lateness.length < MIN_STREAMS) return 0;
  return lateness.sort((a, b) => a - b)[lateness.length >> 1]!;
}

/**
 * Yields to the sockets (the other calls' frames go first) and answers how far behind this isolate is: the longer of
 * its streams' median lateness and the poll wait (the one just measured, or a longer one from the last second).
 */
export async function isolateLatenessMs(): Promise<number> {
  const before = Date.now();
  await yieldToSockets();
  const now = Date.now();
  const waited = now - before;
  if (waited >= longestWait.ms || now - longestWait.at > REMEMBERED_MS) longestWait = { ms: waited, at: now };
  return behindAt(now);
}

/** How far behind this isolate is as last measured, without yielding: its streams' median and a recent poll wait. */
export function isolateBehindMs(): number {
  return behindAt(Date.now());
}

/** The longer of the streams' median lateness and the longest poll wait of the last second. */
function behindAt(now: number): number {
  return Math.max(now - longestWait.at > REMEMBERED_MS ? 0 : longestWait.ms, streamsLateMs(now));
}
