import type { AudioFormat } from "../media/audio/audio-format.ts";
import { decodeAlaw, decodeMulaw } from "../media/audio/g711.ts";
import { base64Capacity, decodeBase64Into } from "../media/audio/pcm16.ts";

/**
 * The object's own, coarse view of the caller's turns, from frame energy: it only has to notice that the caller
 * spoke and stopped, so a provider that then stays silent (no transcript, no audio) can be caught as stalled.
 * Turn-taking itself is the provider's. Hand-written, allocation-free per frame: this runs on every caller frame.
 */

/** Mean square above −40 dBFS counts as voiced (as the local engine's detector). */
const VOICED_MEAN_SQUARE = (32768 * 10 ** (-40 / 20)) ** 2;
const MIN_SPEECH_MS = 200;
const END_SILENCE_MS = 1_000;

/** sample² for every G.711 code, so a frame's energy needs no decoding pass. */
const squaresOf = (decode: (input: Uint8Array, output: Int16Array) => number) => {
  const samples = new Int16Array(256);
  decode(
    Uint8Array.from({ length: 256 }, (_, code) => code),
    samples,
  );
  return Float64Array.from(samples, (sample) => sample * sample);
};
const MULAW_SQUARES = squaresOf(decodeMulaw);
const ALAW_SQUARES = squaresOf(decodeAlaw);

export class CallerTurns {
  private bytes = new Uint8Array(0);
  private voicedMs = 0;
  private silentMs = 0;
  private speaking = false;
  /** When the caller last stopped speaking (the first silent frame after speech; epoch ms, 0 = never). */
  speechEndedAt = 0;

  /**
   * Feeds one frame; true when it ends a caller turn (speech, then a second of silence). `decoded`, when given, is the
   * frame's bytes already decoded from `base64` (the carrier stream's check decodes every payload), read only here.
   */
  push(base64: string, format: AudioFormat, decoded?: Uint8Array): boolean {
    let bytes: Uint8Array;
    let count: number;
    if (decoded) {
      bytes = decoded;
      count = decoded.length;
    } else {
      const capacity = base64Capacity(base64);
      if (this.bytes.length < capacity) this.bytes = new Uint8Array(capacity);
      bytes = this.bytes;
      try {
        count = decodeBase64Into(base64, bytes);
      } catch {
        return false;
      }
    }
    let sum = 0;
    let samples: number;
    if (format.encoding === "pcm16") {
      samples = count >> 1;
      for (let i = 0; i < samples; i++) {
        const sample = ((bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) << 16) >> 16;
        sum += sample * sample;
      }
    } else {
      samples = count;
      const squares = format.encoding === "pcmu" ? MULAW_SQUARES : ALAW_SQUARES;
      for (let i = 0; i < count; i++) sum += squares[bytes[i]!]!;
    }
    if (samples === 0) return false;
    const frameMs = (samples * 1000) / format.sampleRate;
    if (sum / samples > VOICED_MEAN_SQUARE) {
      this.voicedMs += frameMs;
      this.silentMs = 0;
      if (this.voicedMs >= MIN_SPEECH_MS) this.speaking = true;
      return false;
    }
    if (this.speaking && this.silentMs === 0) this.speechEndedAt = Date.now();
    this.silentMs += frameMs;
    if (!this.speaking) {
      if (this.silentMs >= END_SILENCE_MS) this.voicedMs = 0;
      return false;
    }
    if (this.silentMs < END_SILENCE_MS) return false;
    this.speaking = false;
    this.voicedMs = 0;
    return true;
  }
}
