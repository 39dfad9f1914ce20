import { RECORDING_FRAME_BYTES, RECORDING_RATE } from "../../workers/shared/recordings.ts";
import type { AudioFormat } from "../media/audio/audio-format.ts";
import { decodeAlaw, decodeMulaw } from "../media/audio/g711.ts";
import { base64Capacity, decodeBase64Into, decodePcm16le } from "../media/audio/pcm16.ts";
import { Resampler } from "../media/audio/resampler.ts";
import type { AudioTap } from "../media/audio-tap.ts";

/** Timeline not yet flushed that memory holds, per channel: three flush periods' worth, with room for a late flush. */
const RING_SAMPLES = RECORDING_RATE * 12;
/** Agent audio sent and not yet heard (OpenAI sends a reply faster than it plays): a long reply's worth. */
const PENDING_SAMPLES = RECORDING_RATE * 20;
/** Marks awaiting their echo (one per agent chunk). */
const MAX_MARKS = 2048;

/** One channel's wire audio as PCM16 at the recording's rate, into buffers grown once and reused. */
class ToRecordingRate {
  private bytes = new Uint8Array(0);
  private samples = new Int16Array(0);
  private resampled = new Int16Array(0);
  private resampler: Resampler | null = null;
  private rate = RECORDING_RATE;

  decode(base64: string, format: AudioFormat): Int16Array {
    const capacity = base64Capacity(base64);
    if (this.bytes.length < capacity) this.bytes = new Uint8Array(capacity);
    let byteCount: number;
    try {
      byteCount = decodeBase64Into(base64, this.bytes);
    } catch {
      return this.samples.subarray(0, 0);
    }
    const count = format.encoding === "pcm16" ? byteCount >> 1 : byteCount;
    if (this.samples.length < count) this.samples = new Int16Array(count);
    const decoded = this.samples.subarray(0, count);
    const input = this.bytes.subarray(0, byteCount);
    if (format.encoding === "pcmu") decodeMulaw(input, decoded);
    else if (format.encoding === "pcma") decodeAlaw(input, decoded);
    else decodePcm16le(input.subarray(0, count * 2), decoded);
    if (format.sampleRate === RECORDING_RATE) return decoded;
    if (this.rate !== format.sampleRate || !this.resampler) {
      this.resampler = new Resampler(format.sampleRate, RECORDING_RATE);
      this.rate = format.sampleRate;
    }
    const needed = this.resampler.maxOutputLength(count);
    if (this.resampled.length < needed) this.resampled = new Int16Array(needed);
    return this.resampled.subarray(0, this.resampler.process(decoded, this.resampled));
  }
}

/**
 * The session's two-channel recording in memory, on the call's own clock: the caller's stream. Caller frames are laid
 * down one after another on the left (a carrier streams 20 ms frames without pause, silence included, so their count
 * is the call's time); agent audio goes to the right only once the caller heard it — when the mark after it comes
 * back — and is placed to end where the caller's stream is at that moment (never before agent audio already placed).
 * A barge-in drops what was sent and not heard, so the right channel stops where the caller stopped hearing it.
 * Anything neither channel filled is silence.
 *
 * `drain` hands out the settled part of the timeline (what neither channel can still change) as interleaved PCM16LE
 * for the owner to upload off the audio path; the per-frame methods only copy samples into preallocated memory.
 */
export class Recorder implements AudioTap {
  private readonly left = new Int16Array(RING_SAMPLES);
  private readonly right = new Int16Array(RING_SAMPLES);
  /** Positions on the timeline, in samples from the recording's start. Below `flushed` is drained. */
  private flushed = 0;
  private callerPos = 0;
  private agentPos = 0;
  private readonly pending = new Int16Array(PENDING_SAMPLES);
  /** Absolute counts of samples ever queued in / taken out of `pending` (a ring). */
  private pendingIn = 0;
  private pendingOut = 0;
  private readonly markNames: string[] = new Array<string>(MAX_MARKS).fill("");
  /** For each queued mark, `pendingIn` after its chunk. */
  private readonly markEnds = new Float64Array(MAX_MARKS);
  private markHead = 0;
  private markCount = 0;
  /** A leg without marks: where the agent's current reply started, so a barge-in can take back what was not heard. */
  private unmarked: { itemId: string; start: number } = { itemId: "", start: 0 };
  private readonly callerAudio = new ToRecordingRate();
  private readonly agentAudio = new ToRecordingRate();
  /** Samples that had no room (memory full while uploads lagged, or a reply longer than the pending bound). */
  dropped = 0;

  caller(base64: string, format: AudioFormat): void {
    const samples = this.callerAudio.decode(base64, format);
    if (this.callerPos + samples.length > this.flushed + RING_SAMPLES) {
      this.dropped += samples.length;
      return;
    }
    this.write(this.left, this.callerPos, samples);
    this.callerPos += samples.length;
  }

  agent(base64: string, format: AudioFormat, itemId: string, mark: string | null): void {
    const samples = this.agentAudio.decode(base64, format);
    if (mark === null) {
      // Heard as it is sent (a browser plays what it gets): it starts now on the caller's clock.
      if (this.unmarked.itemId !== itemId) this.unmarked = { itemId, start: Math.max(this.agentPos, this.callerPos) };
      this.place(samples, Math.max(this.agentPos, this.callerPos));
      return;
    }
    if (this.markCount === MAX_MARKS || this.pendingIn - this.pendingOut + samples.length > PENDING_SAMPLES) {
      this.dropped += samples.length;
      return;
    }
    for (let i = 0; i < samples.length; i++) this.pending[(this.pendingIn + i) % PENDING_SAMPLES] = samples[i]!;
    this.pendingIn += samples.length;
    const slot = (this.markHead + this.markCount) % MAX_MARKS;
    this.markNames[slot] = mark;
    this.markEnds[slot] = this.pendingIn;
    this.markCount++;
  }

  heard(mark: string): void {
    // Carriers echo marks in order: the echoed one is almost always the oldest queued.
    let found = -1;
    for (let i = 0; i < this.markCount; i++) {
      if (this.markNames[(this.markHead + i) % MAX_MARKS] === mark) {
        found = i;
        break;
      }
    }
    // A mark echoed after a clear (Twilio echoes every pending mark then) finds nothing: that audio was never heard.
    if (found < 0) return;
    const end = this.markEnds[(this.markHead + found) % MAX_MARKS]!;
    this.markHead = (this.markHead + found + 1) % MAX_MARKS;
    this.markCount -= found + 1;
    const count = end - this.pendingOut;
    const start = Math.max(this.agentPos, this.callerPos - count);
    for (let i = 0; i < count; i++) {
      const at = start + i;
      if (at >= this.flushed && at < this.flushed + RING_SAMPLES)
        this.right[at % RING_SAMPLES] = this.pending[(this.pendingOut + i) % PENDING_SAMPLES]!;
      else this.dropped++;
    }
    this.pendingOut = end;
    this.agentPos = start + count;
  }

  cut(cut: { itemId: string; heardMs: number } | null): void {
    this.pendingOut = this.pendingIn;
    this.markCount = 0;
    if (!cut || cut.itemId !== this.unmarked.itemId) return;
    // A leg without marks: the reply was laid down as sent; what followed the heard time is taken back (while in memory).
    const heardEnd = Math.max(this.flushed, this.unmarked.start + Math.round((cut.heardMs * RECORDING_RATE) / 1000));
    for (let at = heardEnd; at < this.agentPos; at++) this.right[at % RING_SAMPLES] = 0;
    this.agentPos = Math.min(this.agentPos, heardEnd);
    this.unmarked = { itemId: "", start: 0 };
  }

  /** True once memory holds half its room undrained: a burst (a carrier catching up) must not wait for the timer. */
  get drainDue(): boolean {
    return this.length - this.flushed > RING_SAMPLES / 2;
  }

  /** The recording's length so far, in samples per channel. */
  get length(): number {
    return Math.max(this.callerPos, this.agentPos);
  }

  /**
   * The settled part of the timeline not yet drained, as interleaved PCM16LE (left, right), and forgotten here; null
   * when there is none. `final`: the session is over, everything goes (agent audio never heard is dropped).
   */
  drain(final: boolean): Uint8Array | null {
    const end = final ? this.length : this.settled();
    if (end <= this.flushed) return null;
    const out = new Uint8Array((end - this.flushed) * RECORDING_FRAME_BYTES);
    const view = new DataView(out.buffer);
    for (let at = this.flushed, offset = 0; at < end; at++, offset += RECORDING_FRAME_BYTES) {
      const slot = at % RING_SAMPLES;
      view.setInt16(offset, this.left[slot]!, true);
      view.setInt16(offset + 2, this.right[slot]!, true);
      this.left[slot] = 0;
      this.right[slot] = 0;
    }
    this.flushed = end;
    if (final) this.cut(null);
    return out;
  }

  /**
   * What neither channel can still change: the caller's stream so far, less the room agent audio awaiting its mark
   * may still need (it will end no earlier than the caller's stream does now). Never so far behind that memory fills.
   */
  private settled(): number {
    const waiting = this.pendingIn - this.pendingOut;
    const agentFloor = waiting > 0 ? Math.max(this.agentPos, this.callerPos - waiting) : this.callerPos;
    const settled = Math.min(this.callerPos, agentFloor);
    return Math.max(settled, this.length - RING_SAMPLES / 2, this.flushed);
  }

  private place(samples: Int16Array, start: number): void {
    this.write(this.right, start, samples);
    this.agentPos = start + samples.length;
  }

  /** Copies samples to the ring from `start`, dropping what falls outside the window memory holds. */
  private write(channel: Int16Array, start: number, samples: Int16Array): void {
    for (let i = 0; i < samples.length; i++) {
      const at = start + i;
      if (at >= this.flushed && at < this.flushed + RING_SAMPLES) channel[at % RING_SAMPLES] = samples[i]!;
      else this.dropped++;
    }
  }
}
