import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readWav } from "../carriers/audio.ts";
import type { SampleEncoding } from "./audio.ts";
import { encodeAudio } from "./audio.ts";

/**
 * Real caller speech for driving the provider simulators: the shared recordings (8 kHz PCM16, see the README
 * beside them) cut into 20 ms frames in whatever encoding and rate a provider takes.
 */

// Real-speech recordings kept with the tests (test/fixtures/audio/README.md says how they were made).
export const CALLER_AUDIO_DIR = join(import.meta.dirname, "../../fixtures/audio");
const FRAME_MS = 20;
/** Silence sent after each utterance, longer than any provider's end-of-turn silence (500 ms by default). */
const TRAILING_SILENCE_MS = 1000;

export type Utterance = "hello" | "invoice" | "interrupt" | "payment" | "goodbye";

/** The utterance at 8 kHz, followed by a second of silence. */
export function callerUtterance(name: Utterance): Int16Array {
  const speech = readWav(readFileSync(`${CALLER_AUDIO_DIR}/caller-${name}.wav`));
  const samples = new Int16Array(speech.length + (8000 * TRAILING_SILENCE_MS) / 1000);
  samples.set(speech);
  return samples;
}

/** Naive upsampling by an integer factor (linear interpolation): good enough for an energy VAD. */
export function upsample(samples: Int16Array, factor: number): Int16Array {
  const output = new Int16Array(samples.length * factor);
  for (let i = 0; i < samples.length; i++) {
    const current = samples[i] ?? 0;
    const next = samples[i + 1] ?? current;
    for (let step = 0; step < factor; step++) {
      output[i * factor + step] = Math.round(current + ((next - current) * step) / factor);
    }
  }
  return output;
}

/** 20 ms wire frames of `samples` (at `sampleRate`) in `encoding`. */
export function wireFrames(samples: Int16Array, sampleRate: number, encoding: SampleEncoding): Buffer[] {
  const frameSamples = (sampleRate * FRAME_MS) / 1000;
  const frames: Buffer[] = [];
  for (let offset = 0; offset < samples.length; offset += frameSamples) {
    frames.push(Buffer.from(encodeAudio(samples.subarray(offset, offset + frameSamples), encoding)));
  }
  return frames;
}
