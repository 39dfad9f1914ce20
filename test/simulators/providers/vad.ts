/**
 * Energy voice activity detection over the caller's decoded audio, the stand-in for each provider's server-side
 * turn detection. It runs on AUDIO time (milliseconds of audio received), never on the wall clock, so a test may
 * push audio faster than real time and still get the same turns.
 */

export type VadEvent = { kind: "speech-started"; audioMs: number } | { kind: "speech-stopped"; audioMs: number };

export interface VadSettings {
  /** Silence after speech that ends the turn (OpenAI `silence_duration_ms`, Gemini `silenceDurationMs`). */
  silenceMs: number;
  /** Frame level above which a frame counts as voiced. */
  thresholdDbfs: number;
  /** Voiced audio needed before speech counts as started, so clicks do not open a turn. */
  minSpeechMs: number;
}

export const DEFAULT_VAD_SETTINGS: VadSettings = { silenceMs: 500, thresholdDbfs: -45, minSpeechMs: 60 };

const FRAME_MS = 20;

export class EnergyVad {
  readonly #settings: VadSettings;
  readonly #frameSamples: number;
  readonly #sampleRate: number;
  #pending: number[] = [];
  #positionMs: number;
  #speaking = false;
  #voicedRunMs = 0;
  #silentRunMs = 0;

  /** `startMs`: audio already received before this detector took over (after a format change). */
  constructor(sampleRate: number, settings: VadSettings, startMs = 0) {
    this.#settings = settings;
    this.#sampleRate = sampleRate;
    this.#frameSamples = Math.max(1, Math.round((sampleRate * FRAME_MS) / 1000));
    this.#positionMs = startMs;
  }

  get speaking(): boolean {
    return this.#speaking;
  }

  /** Audio received so far, in ms (including a partial frame). */
  get positionMs(): number {
    return this.#positionMs + (this.#pending.length / this.#sampleRate) * 1000;
  }

  push(samples: Int16Array): VadEvent[] {
    const events: VadEvent[] = [];
    for (const sample of samples) {
      this.#pending.push(sample);
      if (this.#pending.length === this.#frameSamples) {
        const event = this.#frame(this.#pending);
        if (event) events.push(event);
        this.#pending = [];
      }
    }
    return events;
  }

  /** Ends a turn in progress now (the client committed or ended its audio stream). */
  flush(): VadEvent | undefined {
    if (!this.#speaking) return undefined;
    this.#speaking = false;
    this.#voicedRunMs = 0;
    this.#silentRunMs = 0;
    return { kind: "speech-stopped", audioMs: this.positionMs };
  }

  #frame(frame: readonly number[]): VadEvent | undefined {
    const frameStartMs = this.#positionMs;
    this.#positionMs += FRAME_MS;
    let energy = 0;
    for (const sample of frame) energy += sample * sample;
    const dbfs = 20 * Math.log10(Math.sqrt(energy / frame.length) / 32768 + 1e-12);
    const voiced = dbfs > this.#settings.thresholdDbfs;
    if (!this.#speaking) {
      this.#voicedRunMs = voiced ? this.#voicedRunMs + FRAME_MS : 0;
      if (this.#voicedRunMs < this.#settings.minSpeechMs) return undefined;
      this.#speaking = true;
      this.#silentRunMs = 0;
      return { kind: "speech-started", audioMs: this.#positionMs - this.#voicedRunMs };
    }
    this.#silentRunMs = voiced ? 0 : this.#silentRunMs + FRAME_MS;
    if (this.#silentRunMs < this.#settings.silenceMs) return undefined;
    this.#speaking = false;
    this.#voicedRunMs = 0;
    // The turn ended where the silence began.
    return { kind: "speech-stopped", audioMs: frameStartMs + FRAME_MS - this.#silentRunMs };
  }
}
