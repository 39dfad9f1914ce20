import alawmulaw from "alawmulaw";

/**
 * Telephony audio for the carrier simulators: 8 kHz mono PCM16 in memory, WAV files on disk, G.711 on the wire.
 */

export const TELEPHONY_SAMPLE_RATE = 8000;
export const FRAME_MS = 20;
/** One 20 ms carrier frame at 8 kHz: 160 samples, 160 G.711 bytes. */
export const SAMPLES_PER_FRAME = (TELEPHONY_SAMPLE_RATE * FRAME_MS) / 1000;

export type G711Codec = "PCMU" | "PCMA";

export function encodeG711(codec: G711Codec, samples: Int16Array): Uint8Array {
  return codec === "PCMU" ? alawmulaw.mulaw.encode(samples) : alawmulaw.alaw.encode(samples);
}

export function decodeG711(codec: G711Codec, bytes: Uint8Array): Int16Array {
  return codec === "PCMU" ? alawmulaw.mulaw.decode(bytes) : alawmulaw.alaw.decode(bytes);
}

export function samplesToMs(sampleCount: number): number {
  return (sampleCount * 1000) / TELEPHONY_SAMPLE_RATE;
}

export function msToSamples(ms: number): number {
  return Math.round((ms * TELEPHONY_SAMPLE_RATE) / 1000);
}

interface WavFormat {
  audioFormat: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

/** Reads a PCM16 WAV (any rate, any channel count) and returns 8 kHz mono samples. */
export function readWav(file: Uint8Array): Int16Array {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const tag = (offset: number) => String.fromCharCode(...file.subarray(offset, offset + 4));
  if (file.byteLength < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error("not a RIFF/WAVE file");
  let format: WavFormat | undefined;
  let data: Uint8Array | undefined;
  for (let offset = 12; offset + 8 <= file.byteLength; ) {
    const id = tag(offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === "fmt ") {
      format = {
        audioFormat: view.getUint16(body, true),
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        bitsPerSample: view.getUint16(body + 14, true),
      };
    } else if (id === "data") {
      data = file.subarray(body, Math.min(body + size, file.byteLength));
    }
    offset = body + size + (size % 2); // chunks are word-aligned
  }
  if (!format || !data) throw new Error("WAV file lacks a fmt or data chunk");
  const isPcm = format.audioFormat === WAVE_FORMAT_PCM || format.audioFormat === WAVE_FORMAT_EXTENSIBLE;
  if (!isPcm || format.bitsPerSample !== 16 || format.channels < 1) {
    throw new Error(`unsupported WAV: format ${format.audioFormat}, ${format.bitsPerSample} bits (need PCM16)`);
  }
  const dataView = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const frameCount = Math.floor(data.byteLength / (2 * format.channels));
  const mono = new Float64Array(frameCount);
  for (let i = 0; i < frameCount; i++) {
    let sum = 0;
    for (let channel = 0; channel < format.channels; channel++) {
      sum += dataView.getInt16((i * format.channels + channel) * 2, true);
    }
    mono[i] = sum / format.channels;
  }
  return toInt16(resample(mono, format.sampleRate, TELEPHONY_SAMPLE_RATE));
}

/** A 44-byte-header PCM16 mono WAV at 8 kHz. */
export function writeWav(samples: Int16Array): Uint8Array {
  const file = new Uint8Array(44 + samples.length * 2);
  const view = new DataView(file.buffer);
  const writeTag = (offset: number, text: string) => {
    for (let i = 0; i < 4; i++) file[offset + i] = text.charCodeAt(i);
  };
  writeTag(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  writeTag(8, "WAVE");
  writeTag(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, WAVE_FORMAT_PCM, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, TELEPHONY_SAMPLE_RATE, true);
  view.setUint32(28, TELEPHONY_SAMPLE_RATE * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  writeTag(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) view.setInt16(44 + i * 2, samples[i]!, true);
  return file;
}

function toInt16(samples: Float64Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i]!)));
  return out;
}

/**
 * Linear-interpolation resampler. When decimating, a windowed-sinc low-pass first removes what the lower rate
 * cannot carry: aliased highs would reach the platform's speech recognition as noise.
 */
function resample(samples: Float64Array, fromRate: number, toRate: number): Float64Array {
  if (fromRate === toRate) return samples;
  const source = toRate < fromRate ? lowPass(samples, (0.45 * toRate) / fromRate) : samples;
  const outLength = Math.floor((source.length * toRate) / fromRate);
  const out = new Float64Array(outLength);
  for (let i = 0; i < outLength; i++) {
    const position = (i * fromRate) / toRate;
    const left = Math.floor(position);
    const fraction = position - left;
    const a = source[left] ?? 0;
    const b = source[left + 1] ?? a;
    out[i] = a + (b - a) * fraction;
  }
  return out;
}

/** FIR low-pass; `cutoff` is a fraction of the sample rate (0..0.5). Hann-windowed sinc, 63 taps. */
function lowPass(samples: Float64Array, cutoff: number): Float64Array {
  const half = 31;
  const taps: number[] = [];
  for (let k = -half; k <= half; k++) {
    const sinc = k === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * k) / (Math.PI * k);
    const hann = 0.5 + 0.5 * Math.cos((Math.PI * k) / (half + 1));
    taps.push(sinc * hann);
  }
  const gain = taps.reduce((sum, tap) => sum + tap, 0);
  const out = new Float64Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    let acc = 0;
    for (let k = -half; k <= half; k++) acc += (samples[i - k] ?? 0) * taps[k + half]!;
    out[i] = acc / gain;
  }
  return out;
}

/**
 * Index one past the last sample of speech: trailing silence is not part of the utterance when measuring how
 * long the agent took to answer. Speech = a 20 ms frame whose RMS exceeds 10% of the loudest frame's.
 */
export function speechEndSample(samples: Int16Array): number {
  const frameRms: number[] = [];
  for (let start = 0; start < samples.length; start += SAMPLES_PER_FRAME) {
    const frame = samples.subarray(start, start + SAMPLES_PER_FRAME);
    let energy = 0;
    for (const sample of frame) energy += sample * sample;
    frameRms.push(Math.sqrt(energy / Math.max(1, frame.length)));
  }
  const threshold = Math.max(...frameRms, 0) * 0.1;
  for (let frame = frameRms.length - 1; frame >= 0; frame--) {
    if (frameRms[frame]! > threshold && threshold > 0) return Math.min(samples.length, (frame + 1) * SAMPLES_PER_FRAME);
  }
  return 0;
}
