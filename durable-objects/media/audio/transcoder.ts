import type { AudioFormat } from "./audio-format.ts";
import { decodeAlaw, decodeMulaw, encodeAlaw, encodeMulaw, transcodeAlawToMulaw, transcodeMulawToAlaw } from "./g711.ts";
import { base64Capacity, decodeBase64Into, decodePcm16le, encodeBase64, encodePcm16le } from "./pcm16.ts";
import { Resampler } from "./resampler.ts";

/**
 * One direction of one call's audio, from one wire format to another, base64 in and out. Equal formats pass
 * through untouched (Twilio µ-law ↔ OpenAI audio/pcmu); G.711 ↔ G.711 is a table lookup; everything else goes
 * through PCM16 samples and, when the rates differ, the anti-aliasing resampler. Buffers grow once to the frame
 * size and are reused: nothing is allocated per frame but the output string.
 */
export type Transcode = (base64: string) => string;

/** Base64 of a frame larger than this (≈ 3 s of 24 kHz PCM16) is not a frame: it is dropped. */
export const MAX_FRAME_BASE64_CHARS = 192 * 1024;

export const sameFormat = (a: AudioFormat, b: AudioFormat) => a.encoding === b.encoding && a.sampleRate === b.sampleRate;

export function bytesPerMs(format: AudioFormat): number {
  return (format.sampleRate / 1000) * (format.encoding === "pcm16" ? 2 : 1);
}

export function createTranscoder(from: AudioFormat, to: AudioFormat): Transcode & { reset(): void } {
  if (sameFormat(from, to)) return Object.assign((base64: string) => base64, { reset() {} });
  let inBytes = new Uint8Array(0);
  let samples = new Int16Array(0);
  let resampled = new Int16Array(0);
  let outBytes = new Uint8Array(0);
  const resampler = from.sampleRate === to.sampleRate ? null : new Resampler(from.sampleRate, to.sampleRate);

  const transcode = (base64: string): string => {
    if (base64.length > MAX_FRAME_BASE64_CHARS) return "";
    const capacity = base64Capacity(base64);
    if (inBytes.length < capacity) inBytes = new Uint8Array(capacity);
    const byteCount = decodeBase64Into(base64, inBytes);
    const input = inBytes.subarray(0, byteCount);

    if (from.encoding !== "pcm16" && to.encoding !== "pcm16") {
      if (outBytes.length < byteCount) outBytes = new Uint8Array(capacity);
      const out = outBytes.subarray(0, byteCount);
      if (from.encoding === "pcmu") transcodeMulawToAlaw(input, out);
      else transcodeAlawToMulaw(input, out);
      return encodeBase64(out);
    }

    // A trailing half sample cannot be decoded: it is dropped (the sender's framing bug).
    const sampleCount = from.encoding === "pcm16" ? byteCount >> 1 : byteCount;
    if (samples.length < sampleCount) samples = new Int16Array(sampleCount);
    const decoded = samples.subarray(0, sampleCount);
    if (from.encoding === "pcm16") decodePcm16le(input.subarray(0, sampleCount * 2), decoded);
    else if (from.encoding === "pcmu") decodeMulaw(input, decoded);
    else decodeAlaw(input, decoded);

    let pcm = decoded;
    if (resampler) {
      const needed = resampler.maxOutputLength(sampleCount);
      if (resampled.length < needed) resampled = new Int16Array(needed);
      pcm = resampled.subarray(0, resampler.process(decoded, resampled));
    }

    const outCount = to.encoding === "pcm16" ? pcm.length * 2 : pcm.length;
    if (outBytes.length < outCount) outBytes = new Uint8Array(outCount);
    const out = outBytes.subarray(0, outCount);
    if (to.encoding === "pcm16") encodePcm16le(pcm, out);
    else if (to.encoding === "pcmu") encodeMulaw(pcm, out);
    else encodeAlaw(pcm, out);
    return encodeBase64(out);
  };
  return Object.assign(transcode, { reset: () => resampler?.reset() });
}
