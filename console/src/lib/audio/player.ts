import { LIVE_AUDIO_RATE } from "./microphone.ts";

/** How far ahead of "now" the first frame of a burst is scheduled: enough to absorb network jitter between frames. */
const LEAD_SECONDS = 0.06;

/**
 * Plays `/live` audio (PCM16 little-endian, 16 kHz, mono frames) gaplessly: each frame is scheduled right after the
 * one before. `clear()` drops everything not yet played at once — the platform's `playback_clear` when the caller
 * talks over the agent. Create it from a user gesture (browsers start audio only then).
 */
export class Pcm16Player {
  private readonly context = new AudioContext({ sampleRate: LIVE_AUDIO_RATE, latencyHint: "interactive" });
  private readonly scheduled = new Set<AudioBufferSourceNode>();
  private nextStart = 0;
  /** Frames received and scheduled; what a test or an indicator counts. */
  framesPlayed = 0;

  play(frame: ArrayBuffer): void {
    const samples = new Int16Array(frame, 0, frame.byteLength >> 1);
    if (samples.length === 0) return;
    const buffer = this.context.createBuffer(1, samples.length, LIVE_AUDIO_RATE);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = (samples[i] ?? 0) / 0x8000;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const now = this.context.currentTime;
    const start = Math.max(this.nextStart, now + LEAD_SECONDS * (this.nextStart < now ? 1 : 0));
    source.start(start);
    this.nextStart = start + buffer.duration;
    this.scheduled.add(source);
    source.onended = () => this.scheduled.delete(source);
    this.framesPlayed++;
  }

  /** Stops what is playing and drops what is queued. */
  clear(): void {
    for (const source of this.scheduled) source.stop();
    this.scheduled.clear();
    this.nextStart = 0;
  }

  /** Seconds of audio queued and not yet played. */
  queuedSeconds(): number {
    return Math.max(0, this.nextStart - this.context.currentTime);
  }

  /** True when the browser has not let audio start yet (a page loaded without a user gesture, e.g. a reload). */
  get suspended(): boolean {
    return this.context.state === "suspended";
  }

  /** Starts audio the browser held back; call it from a user gesture. */
  resume(): Promise<void> {
    return this.context.resume();
  }

  close(): void {
    this.clear();
    void this.context.close();
  }
}
