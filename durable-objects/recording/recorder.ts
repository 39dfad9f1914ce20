import { RECORDING_RATE, type RecordingEncoding, sampleBytes, silenceByte } from "../../workers/shared/recording-format.ts";
import type { AudioFormat } from "../media/audio/audio-format.ts";
import { decodeAlaw, decodeMulaw, encodeAlaw, encodeMulaw } from "../media/audio/g711.ts";
import { base64Capacity, decodeBase64Into, decodePcm16le, encodePcm16le } from "../media/audio/pcm16.ts";
import { Resampler } from "../media/audio/resampler.ts";
import type { AudioTap } from "../media/audio-tap.ts";

/**
 * Timeline not yet drained that memory holds, per channel: more than two upload periods (15 s), since a drain leaves
 * at most half of it behind (`settled`) and a burst that fills half asks for an upload at once (`drainDue`).
 */
const RING_SAMPLES = RECORDING_RATE * 36;
/** Agent audio sent and not yet heard (OpenAI sends a reply faster than it plays): a long reply's worth. */
const PENDING_SAMPLES = RECORDING_RATE * 20;
/** Marks awaiting their echo (one per agent chunk). */
const MAX_MARKS = 2048;

/** The encoding a leg's audio is recorded in: G.711 as it is, anything else as PCM16. */
const encodingOf = (format: AudioFormat): RecordingEncoding => (format.encoding === "pcm16" ? "pcm16" : format.encoding);

/**
 * The slow path, for audio not already in the recording's encoding at its rate (a browser's 16 kHz PCM16, or a leg
 * whose codec differs from the one the recording began with): decoded, resampled, encoded, into buffers grown once.
 */
class Transcoder {
  private bytes = new Uint8Array(0);
  private samples = new Int16Array(0);
  private resampled = new Int16Array(0);
  private out = new Uint8Array(0);
  private resampler: Resampler | null = null;
  private rate = RECORDING_RATE;

  convert(wire: Uint8Array, format: AudioFormat, encoding: RecordingEncoding): Uint8Array {
    const count = format.encoding === "pcm16" ? wire.length >> 1 : wire.length;
    if (this.samples.length < count) this.samples = new Int16Array(count);
    let samples = this.samples.subarray(0, count);
    if (format.encoding === "pcmu") decodeMulaw(wire, samples);
    else if (format.encoding === "pcma") decodeAlaw(wire, samples);
    else decodePcm16le(wire.subarray(0, count * 2), samples);
    if (format.sampleRate !== RECORDING_RATE) {
      if (this.rate !== format.sampleRate || !this.resampler) {
        this.resampler = new Resampler(format.sampleRate, RECORDING_RATE);
        this.rate = format.sampleRate;
      }
      const needed = this.resampler.maxOutputLength(count);
      if (this.resampled.length < needed) this.resampled = new Int16Array(needed);
      samples = this.resampled.subarray(0, this.resampler.process(samples, this.resampled));
    }
    const size = samples.length * sampleBytes(encoding);
    if (this.out.length < size) this.out = new Uint8Array(size);
    const out = this.out.subarray(0, size);
    if (encoding === "pcmu") encodeMulaw(samples, out);
    else if (encoding === "pcma") encodeAlaw(samples, out);
    else encodePcm16le(samples, out);
    return out;
  }

  /** Scratch room for a frame's wire bytes. */
  scratch(capacity: number): Uint8Array {
    if (this.bytes.length < capacity) this.bytes = new Uint8Array(capacity);
    return this.bytes;
  }
}

/** One direction's frames in the recording's encoding: base64 decoded into a scratch buffer, transcoded only if needed. */
class ToRecording {
  private readonly transcoder = new Transcoder();

  /** The frame's bytes in `encoding` (valid until the next call); empty when the payload is not base64. */
  bytes(base64: string, format: AudioFormat, encoding: RecordingEncoding): Uint8Array {
    const scratch = this.transcoder.scratch(base64Capacity(base64));
    let count: number;
    try {
      count = decodeBase64Into(base64, scratch);
    } catch {
      return scratch.subarray(0, 0);
    }
    const wire = scratch.subarray(0, count);
    if (format.sampleRate === RECORDING_RATE && encodingOf(format) === encoding) {
      return encoding === "pcm16" ? wire.subarray(0, count & ~1) : wire;
    }
    return this.transcoder.convert(wire, format, encoding);
  }
}

/**
 * Copies `count` samples of `width` bytes from one ring to another (a ring of `Infinity` samples is a plain buffer),
 * in as few native copies as the two rings' wraps allow.
 */
function copySamples(
  src: Uint8Array,
  srcRing: number,
  srcAt: number,
  dst: Uint8Array,
  dstRing: number,
  dstAt: number,
  count: number,
  width: number,
): void {
  while (count > 0) {
    const s = srcAt % srcRing;
    const d = dstAt % dstRing;
    const run = Math.min(count, srcRing - s, dstRing - d);
    dst.set(src.subarray(s * width, (s + run) * width), d * width);
    srcAt += run;
    dstAt += run;
    count -= run;
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
 * Samples are kept in the recording's encoding, chosen by the first frame: a carrier's G.711 bytes as they came
 * (per frame a native base64 decode and byte copies, no codec), else PCM16. `drain` hands out the settled part of
 * the timeline (what neither channel can still change) interleaved, for the owner to upload off the audio path.
 */
export class Recorder implements AudioTap {
  private encoding: RecordingEncoding | null = null;
  private width = 1;
  private silence = 0;
  /** The channels and the agent audio awaiting its mark: allocated by the first frame, in its encoding's width. */
  private left = new Uint8Array(0);
  private right = new Uint8Array(0);
  private pending = new Uint8Array(0);
  /** Positions on the timeline, in samples from the recording's start. Below `flushed` is drained. */
  private flushed = 0;
  private callerPos = 0;
  private agentPos = 0;
  /** Absolute counts of samples ever queued in / taken out of `pending` (a ring). */
  private pendingIn = 0;
  private pendingOut = 0;
  private readonly markNames: string[] = [];
  /** For each queued mark, `pendingIn` after its chunk. */
  private readonly markEnds = new Float64Array(MAX_MARKS);
  private markHead = 0;
  private markCount = 0;
  /** A leg without marks: where the agent's current reply started, so a barge-in can take back what was not heard. */
  private unmarked: { itemId: string; start: number } = { itemId: "", start: 0 };
  private readonly callerAudio = new ToRecording();
  private readonly agentAudio = new ToRecording();
  /** Samples that had no room (memory full while uploads lagged, or a reply longer than the pending bound). */
  dropped = 0;

  caller(base64: string, format: AudioFormat): void {
    const encoding = this.encoding ?? this.allocate(encodingOf(format));
    const bytes = this.callerAudio.bytes(base64, format, encoding);
    const count = bytes.length / this.width;
    if (this.callerPos + count > this.flushed + RING_SAMPLES) {
      this.dropped += count;
      return;
    }
    this.write(this.left, this.callerPos, bytes, Number.POSITIVE_INFINITY, 0, count);
    this.callerPos += count;
  }

  agent(base64: string, format: AudioFormat, itemId: string, mark: string | null): void {
    const encoding = this.encoding ?? this.allocate(encodingOf(format));
    const bytes = this.agentAudio.bytes(base64, format, encoding);
    const count = bytes.length / this.width;
    if (mark === null) {
      // Heard as it is sent (a browser plays what it gets): it starts now on the caller's clock.
      const start = Math.max(this.agentPos, this.callerPos);
      if (this.unmarked.itemId !== itemId) this.unmarked = { itemId, start };
      this.write(this.right, start, bytes, Number.POSITIVE_INFINITY, 0, count);
      this.agentPos = start + count;
      return;
    }
    if (this.markCount === MAX_MARKS || this.pendingIn - this.pendingOut + count > PENDING_SAMPLES) {
      this.dropped += count;
      return;
    }
    copySamples(bytes, Number.POSITIVE_INFINITY, 0, this.pending, PENDING_SAMPLES, this.pendingIn, count, this.width);
    this.pendingIn += count;
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
    this.write(this.right, start, this.pending, PENDING_SAMPLES, this.pendingOut, count);
    this.pendingOut = end;
    this.agentPos = start + count;
  }

  cut(cut: { itemId: string; heardMs: number } | null): void {
    this.pendingOut = this.pendingIn;
    this.markCount = 0;
    if (!cut || cut.itemId !== this.unmarked.itemId) return;
    // A leg without marks: the reply was laid down as sent; what followed the heard time is taken back (while in memory).
    const heardEnd = Math.max(this.flushed, this.unmarked.start + Math.round((cut.heardMs * RECORDING_RATE) / 1000));
    this.silenceRange(this.right, heardEnd, Math.min(this.agentPos, this.flushed + RING_SAMPLES));
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
   * The settled part of the timeline not yet drained, interleaved (left, right) in the recording's encoding, and
   * forgotten here; null when there is none. `final`: the session is over, everything goes (agent audio never heard
   * is dropped).
   */
  drain(final: boolean): { bytes: Uint8Array; encoding: RecordingEncoding } | null {
    const encoding = this.encoding;
    const end = final ? this.length : this.settled();
    if (!encoding || end <= this.flushed) return null;
    const width = this.width;
    const out = new Uint8Array((end - this.flushed) * 2 * width);
    for (let at = this.flushed, offset = 0; at < end; ) {
      const slot = at % RING_SAMPLES;
      const run = Math.min(end - at, RING_SAMPLES - slot);
      const { left, right } = this;
      if (width === 1) {
        for (let i = 0, s = slot; i < run; i++, s++, offset += 2) {
          out[offset] = left[s]!;
          out[offset + 1] = right[s]!;
        }
      } else {
        for (let i = 0, s = 2 * slot; i < run; i++, s += 2, offset += 4) {
          out[offset] = left[s]!;
          out[offset + 1] = left[s + 1]!;
          out[offset + 2] = right[s]!;
          out[offset + 3] = right[s + 1]!;
        }
      }
      at += run;
    }
    this.silenceRange(this.left, this.flushed, end);
    this.silenceRange(this.right, this.flushed, end);
    this.flushed = end;
    if (final) this.cut(null);
    return { bytes: out, encoding };
  }

  private allocate(encoding: RecordingEncoding): RecordingEncoding {
    this.encoding = encoding;
    this.width = sampleBytes(encoding);
    this.silence = silenceByte(encoding);
    this.left = new Uint8Array(RING_SAMPLES * this.width).fill(this.silence);
    this.right = new Uint8Array(RING_SAMPLES * this.width).fill(this.silence);
    this.pending = new Uint8Array(PENDING_SAMPLES * this.width);
    return encoding;
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

  /**
   * Copies `count` samples from `src` (a ring of `srcRing` samples, from `srcAt`) to the channel from `start`,
   * dropping what falls outside the window memory holds.
   */
  private write(channel: Uint8Array, start: number, src: Uint8Array, srcRing: number, srcAt: number, count: number): void {
    const from = Math.max(start, this.flushed);
    const to = Math.min(start + count, this.flushed + RING_SAMPLES);
    this.dropped += count - Math.max(0, to - from);
    if (to > from) copySamples(src, srcRing, srcAt + (from - start), channel, RING_SAMPLES, from, to - from, this.width);
  }

  /** Silences the channel's samples in [from, to) (positions on the timeline, within the window). */
  private silenceRange(channel: Uint8Array, from: number, to: number): void {
    for (let at = from; at < to; ) {
      const slot = at % RING_SAMPLES;
      const run = Math.min(to - at, RING_SAMPLES - slot);
      channel.fill(this.silence, slot * this.width, (slot + run) * this.width);
      at += run;
    }
  }
}
