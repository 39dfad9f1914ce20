import * as alawmulawModule from "alawmulaw";

// Node loads the package's CommonJS build (all of it under `default`); Vite's module runner, which runs vitest's
// globalSetup, loads its ESM entry (named exports only, no default). Accept both.
const commonJsExports: unknown = Reflect.get(alawmulawModule, "default");
const alawmulaw = (commonJsExports ?? alawmulawModule) as typeof alawmulawModule;

/**
 * Audio as the simulated providers see it: the wire encodings they accept and emit, and the synthetic "voice"
 * they answer with. Everything is mono.
 */

export type SampleEncoding = "pcm16" | "mulaw" | "alaw";

export interface AudioFormat {
  encoding: SampleEncoding;
  sampleRate: number;
}

export function bytesPerSample(encoding: SampleEncoding): number {
  return encoding === "pcm16" ? 2 : 1;
}

export function bytesToMs(byteCount: number, format: AudioFormat): number {
  return (byteCount / bytesPerSample(format.encoding) / format.sampleRate) * 1000;
}

/** Wire bytes → PCM16 samples. A trailing odd byte of PCM16 (half a sample) is ignored, as decoders do. */
export function decodeAudio(bytes: Uint8Array, encoding: SampleEncoding): Int16Array {
  if (encoding === "mulaw") return alawmulaw.mulaw.decode(bytes);
  if (encoding === "alaw") return alawmulaw.alaw.decode(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const samples = new Int16Array(Math.floor(bytes.byteLength / 2));
  for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(i * 2, true);
  return samples;
}

/** PCM16 samples → wire bytes (PCM16 is little-endian on every provider's wire). */
export function encodeAudio(samples: Int16Array, encoding: SampleEncoding): Uint8Array {
  if (encoding === "mulaw") return alawmulaw.mulaw.encode(samples);
  if (encoding === "alaw") return alawmulaw.alaw.encode(samples);
  const bytes = new Uint8Array(samples.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < samples.length; i++) view.setInt16(i * 2, samples[i] ?? 0, true);
  return bytes;
}

/** How long the agent "speaks" per character of reply text: ~ a brisk speaking rate. */
export const SPEECH_MS_PER_CHARACTER = 60;
const MIN_SPEECH_MS = 300;
const MAX_SPEECH_MS = 30_000;
const PEAK_LEVEL = 0.3 * 32767;
const HARMONICS = 6;
const HARMONIC_NORM = Array.from({ length: HARMONICS }, (_, k) => 1 / (k + 1)).reduce((a, b) => a + b);
// Gain follows its target with this time constant, so word edges fade instead of clicking.
const GAIN_SMOOTHING_SECONDS = 0.008;

export function speechDurationMs(text: string): number {
  return Math.min(MAX_SPEECH_MS, Math.max(MIN_SPEECH_MS, Array.from(text).length * SPEECH_MS_PER_CHARACTER));
}

/**
 * A deterministic speech-like signal for `text`: a gliding fundamental (~120–160 Hz) with six harmonics, voiced
 * while the text has letters and silent at spaces and punctuation, with a ~4 Hz syllable envelope. Its top
 * harmonic stays under 1 kHz, so it survives 8 kHz telephony without aliasing.
 */
export function synthesizeSpeech(text: string, sampleRate: number): Int16Array {
  const durationMs = speechDurationMs(text);
  const samples = new Int16Array(Math.round((durationMs * sampleRate) / 1000));
  const smoothing = 1 - Math.exp(-1 / (GAIN_SMOOTHING_SECONDS * sampleRate));
  const voicedCharacters = Array.from(text, (character) => /[\p{L}\p{N}]/u.test(character));
  const characterMs = durationMs / Math.max(1, voicedCharacters.length);
  let phase = 0;
  let gain = 0;
  for (let i = 0; i < samples.length; i++) {
    const seconds = i / sampleRate;
    const voiced = voicedCharacters[Math.floor((seconds * 1000) / characterMs)] ?? false;
    const syllable = 0.65 + 0.35 * Math.sin(2 * Math.PI * 4 * seconds);
    gain += ((voiced ? syllable : 0) - gain) * smoothing;
    const fundamentalHz = 140 + 20 * Math.sin(2 * Math.PI * 0.7 * seconds);
    phase = (phase + (2 * Math.PI * fundamentalHz) / sampleRate) % (2 * Math.PI);
    let value = 0;
    for (let k = 1; k <= HARMONICS; k++) value += Math.sin(k * phase) / k;
    samples[i] = Math.round((value / HARMONIC_NORM) * gain * PEAK_LEVEL);
  }
  return samples;
}
