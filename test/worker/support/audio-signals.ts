import type { AudioFormat } from "../../../durable-objects/media/audio/audio-format.ts";
import { decodeAlaw, decodeMulaw } from "../../../durable-objects/media/audio/g711.ts";
import { decodePcm16le } from "../../../durable-objects/media/audio/pcm16.ts";

import { base64Frames } from "./provider-simulator.ts";

/** Wire audio for provider tests: framing by duration, silence, and how loud what came back is. */

export function bytesPerMs(format: AudioFormat): number {
  return (format.sampleRate / 1000) * (format.encoding === "pcm16" ? 2 : 1);
}

/** Base64 frames of `frameMs` each, as a carrier delivers them. */
export function framesOf(bytes: Uint8Array, format: AudioFormat, frameMs = 20): string[] {
  return base64Frames(bytes, bytesPerMs(format) * frameMs);
}

/** Digital silence in `format` (µ-law and A-law zero are not byte 0). */
export function silence(format: AudioFormat, ms: number): Uint8Array {
  const silentByte = format.encoding === "pcmu" ? 0xff : format.encoding === "pcma" ? 0xd5 : 0;
  return new Uint8Array(bytesPerMs(format) * ms).fill(silentByte);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((length, part) => length + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

/** Samples of base64 chunks in `format`, concatenated. */
export function decodeSamples(base64Chunks: string[], format: AudioFormat): Int16Array {
  const bytes = Uint8Array.from(base64Chunks.flatMap((chunk) => Array.from(atob(chunk), (char) => char.charCodeAt(0))));
  const samples = new Int16Array(format.encoding === "pcm16" ? bytes.length / 2 : bytes.length);
  if (format.encoding === "pcmu") decodeMulaw(bytes, samples);
  else if (format.encoding === "pcma") decodeAlaw(bytes, samples);
  else decodePcm16le(bytes, samples);
  return samples;
}

export function rms(samples: Int16Array): number {
  let energy = 0;
  for (const sample of samples) energy += sample * sample;
  return samples.length === 0 ? 0 : Math.sqrt(energy / samples.length);
}

/**
 * Share of a signal's energy in its sample-to-sample differences: how much of it is high-pitched. The simulated agent
 * voice lies under 1 kHz (about 0.05 decoded by the right G.711 law); its bytes decoded by the other law are static
 * (about 0.24).
 */
export function differenceShare(samples: Int16Array): number {
  let mean = 0;
  for (const sample of samples) mean += sample / samples.length;
  let energy = 0;
  let difference = 0;
  for (let i = 1; i < samples.length; i++) {
    energy += (samples[i]! - mean) ** 2;
    difference += (samples[i]! - samples[i - 1]!) ** 2;
  }
  return difference / energy;
}
