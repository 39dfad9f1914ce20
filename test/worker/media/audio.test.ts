import { alaw, mulaw } from "alawmulaw";
import { describe, expect, it } from "vitest";
import {
  decodeAlaw,
  decodeMulaw,
  encodeAlaw,
  encodeMulaw,
  transcodeAlawToMulaw,
  transcodeMulawToAlaw,
} from "../../../durable-objects/media/audio/g711.ts";
import { decodeBase64Into, decodePcm16le, encodeBase64, encodePcm16le } from "../../../durable-objects/media/audio/pcm16.ts";
import { Resampler, type SampleRate } from "../../../durable-objects/media/audio/resampler.ts";
import { createTranscoder } from "../../../durable-objects/media/audio/transcoder.ts";

const ALL_CODES = Uint8Array.from({ length: 256 }, (_, code) => code);
const ALL_SAMPLES = Int16Array.from({ length: 65536 }, (_, index) => index - 32768);

/** ITU-T G.191 STL `ulaw_compress`, transcribed loop for loop: the reference the encoder must match. */
function referenceMulaw(sample: number): number {
  let absolute = (sample < 0 ? ~sample >> 2 : sample >> 2) + 33;
  if (absolute > 0x1fff) absolute = 0x1fff;
  let segment = 1;
  for (let rest = absolute >> 6; rest !== 0; rest >>= 1) segment++;
  const code = ((8 - segment) << 4) | (15 - ((absolute >> segment) & 0x0f));
  return sample >= 0 ? code | 0x80 : code;
}

/** ITU-T G.191 STL `alaw_compress`, transcribed loop for loop. */
function referenceAlaw(sample: number): number {
  let magnitude = sample < 0 ? ~sample >> 4 : sample >> 4;
  if (magnitude > 15) {
    let exponent = 1;
    while (magnitude > 31) {
      magnitude >>= 1;
      exponent++;
    }
    magnitude = magnitude - 16 + (exponent << 4);
  }
  return (sample >= 0 ? magnitude | 0x80 : magnitude) ^ 0x55;
}

const LAWS = [
  { name: "µ-law", encode: encodeMulaw, decode: decodeMulaw, reference: referenceMulaw, alawmulaw: mulaw },
  { name: "A-law", encode: encodeAlaw, decode: decodeAlaw, reference: referenceAlaw, alawmulaw: alaw },
] as const;

function encoded(law: (typeof LAWS)[number], samples: Int16Array): Uint8Array {
  const codes = new Uint8Array(samples.length);
  law.encode(samples, codes);
  return codes;
}

function decoded(law: (typeof LAWS)[number], codes: Uint8Array): Int16Array {
  const samples = new Int16Array(codes.length);
  law.decode(codes, samples);
  return samples;
}

describe.each(LAWS)("G.711 $name", (law) => {
  it("decodes all 256 codes exactly as the alawmulaw package does", () => {
    expect(decoded(law, ALL_CODES)).toEqual(law.alawmulaw.decode(ALL_CODES));
  });

  it("encodes all 65536 samples exactly as the ITU-T G.191 reference does", () => {
    const codes = encoded(law, ALL_SAMPLES);
    const mismatches = ALL_SAMPLES.filter((sample, index) => codes[index] !== law.reference(sample));
    expect(mismatches).toEqual(new Int16Array(0));
  });

  it("differs from alawmulaw only on negative decision thresholds, where the reference rounds one's-complement", () => {
    const ours = encoded(law, ALL_SAMPLES);
    const theirs = law.alawmulaw.encode(ALL_SAMPLES);
    const differing = ALL_SAMPLES.filter((_, index) => ours[index] !== theirs[index]);
    // alawmulaw quantizes the magnitude −x; the reference quantizes −x−1, which alawmulaw does for x+1.
    for (const sample of differing) {
      expect(sample).toBeLessThan(0);
      expect(ours[sample + 32768]).toBe(theirs[sample + 32769]);
    }
    // 128 codes per sign leave 127 thresholds between them, each hit once.
    expect(differing.length).toBe(127);
  });

  it("round-trips every code through linear PCM and quantizes monotonically", () => {
    const linear = decoded(law, ALL_CODES);
    expect(decoded(law, encoded(law, linear))).toEqual(linear);
    const reconstructed = decoded(law, encoded(law, ALL_SAMPLES));
    for (let i = 1; i < reconstructed.length; i++) {
      if (reconstructed[i]! < reconstructed[i - 1]!) expect.fail(`not monotonic at ${ALL_SAMPLES[i]}`);
    }
  });

  it("writes into a longer output, returns the count, and refuses a shorter one", () => {
    const output = new Uint8Array(8).fill(0xaa);
    expect(law.encode(new Int16Array([0, 1000, -1000]), output)).toBe(3);
    expect(output.subarray(3)).toEqual(new Uint8Array(5).fill(0xaa));
    expect(() => law.decode(new Uint8Array(4), new Int16Array(3))).toThrow(RangeError);
  });
});

describe("G.711 transcoding", () => {
  it("equals decoding to linear PCM and re-encoding, for every code, in place too", () => {
    const mulawToAlaw = new Uint8Array(256);
    transcodeMulawToAlaw(ALL_CODES, mulawToAlaw);
    expect(mulawToAlaw).toEqual(encoded(LAWS[1], decoded(LAWS[0], ALL_CODES)));

    const inPlace = ALL_CODES.slice();
    transcodeAlawToMulaw(inPlace, inPlace);
    expect(inPlace).toEqual(encoded(LAWS[0], decoded(LAWS[1], ALL_CODES)));
  });
});

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32), so failures reproduce. */
function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function tone(frequency: number, rate: number, seconds: number, amplitude = 10000): Int16Array {
  const step = (2 * Math.PI * frequency) / rate;
  return Int16Array.from({ length: rate * seconds }, (_, i) => Math.round(amplitude * Math.sin(step * i)));
}

/** A tone plus white noise: energy at every frequency, so any filter state difference would show. */
function noisyTone(rate: number, seconds: number, seed: number): Int16Array {
  const random = seededRandom(seed);
  return tone(440, rate, seconds, 8000).map((sample) => sample + Math.round((random() - 0.5) * 16000));
}

/** Runs a stream through a fresh resampler in frames of the given sizes (cycled) and joins the output. */
function resample(inputRate: SampleRate, outputRate: SampleRate, signal: Int16Array, frameSizes: number[]): Int16Array {
  const resampler = new Resampler(inputRate, outputRate);
  const joined = new Int16Array(resampler.maxOutputLength(signal.length));
  let consumed = 0;
  let produced = 0;
  for (let frame = 0; consumed < signal.length; frame++) {
    const input = signal.subarray(consumed, consumed + frameSizes[frame % frameSizes.length]!);
    const output = new Int16Array(resampler.maxOutputLength(input.length));
    const written = resampler.process(input, output);
    joined.set(output.subarray(0, written), produced);
    consumed += input.length;
    produced += written;
  }
  return joined.subarray(0, produced);
}

const RATE_PAIRS: [SampleRate, SampleRate][] = [
  [8000, 16000],
  [8000, 24000],
  [16000, 24000],
  [24000, 16000],
  [16000, 8000],
  [24000, 8000],
];

describe.each(RATE_PAIRS)("Resampler %i Hz → %i Hz", (inputRate, outputRate) => {
  const signal = noisyTone(inputRate, 1, inputRate + outputRate);
  const whole = resample(inputRate, outputRate, signal, [signal.length]);

  it("gives the same samples frame by frame as in one call, for 20 ms and for odd frame sizes", () => {
    expect(whole.length).toBe(signal.length * (outputRate / inputRate));
    expect(resample(inputRate, outputRate, signal, [inputRate / 50])).toEqual(whole);
    expect(resample(inputRate, outputRate, signal, [1, 7, 2, 159, 3, 161, 0, 479, 13])).toEqual(whole);
  });

  it("turns each 20 ms frame into exactly one 20 ms frame and refuses a too-small output", () => {
    const resampler = new Resampler(inputRate, outputRate);
    const [inputFrame, outputFrame] = [inputRate / 50, outputRate / 50];
    const output = new Int16Array(resampler.maxOutputLength(inputFrame));
    for (let start = 0; start < 5 * inputFrame; start += inputFrame) {
      expect(resampler.process(signal.subarray(start, start + inputFrame), output)).toBe(outputFrame);
    }
    const tooSmall = new Int16Array(resampler.maxOutputLength(10) - 1);
    expect(() => resampler.process(signal.subarray(0, 10), tooSmall)).toThrow(RangeError);
  });

  it("forgets the stream on reset", () => {
    const resampler = new Resampler(inputRate, outputRate);
    const scratch = new Int16Array(resampler.maxOutputLength(333));
    resampler.process(signal.subarray(0, 333), scratch);
    resampler.reset();
    const output = new Int16Array(whole.length);
    expect(output.subarray(0, resampler.process(signal, output))).toEqual(whole);
  });
});

it("refuses to resample a rate to itself", () => {
  expect(() => new Resampler(16000, 16000)).toThrow(RangeError);
});

/** Goertzel: the amplitude of the component at `frequency` (one DFT bin at any frequency). */
function amplitudeAt(samples: Int16Array, rate: number, frequency: number): number {
  const coefficient = 2 * Math.cos((2 * Math.PI * frequency) / rate);
  let previous = 0;
  let beforePrevious = 0;
  for (const sample of samples) {
    const current = sample + coefficient * previous - beforePrevious;
    beforePrevious = previous;
    previous = current;
  }
  const power = previous * previous + beforePrevious * beforePrevious - coefficient * previous * beforePrevious;
  return (2 * Math.sqrt(Math.max(power, 0))) / samples.length;
}

/** The strongest frequency, to 0.5 Hz: a 10 Hz scan of the whole band, then a fine one around its peak. */
function peakFrequency(samples: Int16Array, rate: number): number {
  const strongest = (from: number, to: number, step: number): number => {
    let best = from;
    let bestAmplitude = 0;
    for (let frequency = from; frequency <= to; frequency += step) {
      const amplitude = amplitudeAt(samples, rate, frequency);
      if (amplitude > bestAmplitude) [best, bestAmplitude] = [frequency, amplitude];
    }
    return best;
  };
  const coarse = strongest(10, rate / 2 - 10, 10);
  return strongest(coarse - 10, coarse + 10, 0.5);
}

function rmsDb(samples: Int16Array): number {
  let sum = 0;
  for (const sample of samples) sum += sample * sample;
  return 10 * Math.log10(sum / samples.length);
}

const decibels = (ratio: number): number => 20 * Math.log10(ratio);

/** Leaves out the first 50 ms (filter warm-up) and keeps half a second. */
const steadyState = (samples: Int16Array, rate: number): Int16Array => samples.subarray(rate / 20, rate / 20 + rate / 2);

/** Where zero-stuffing leaves copies of a tone when upsampling: around the input rate, below the output Nyquist. */
function images(inputRate: SampleRate, outputRate: SampleRate, frequency: number): number[] {
  if (outputRate < inputRate) return [];
  return [inputRate - frequency, inputRate + frequency].filter((image) => image < outputRate / 2);
}

/** Asserts the tone is at its frequency, at its input level within 1 dB, and that no image is within 40 dB of it. */
function expectFaithfulTone(input: Int16Array, inputRate: SampleRate, output: Int16Array, outputRate: SampleRate, frequency: number): void {
  const steadyOutput = steadyState(output, outputRate);
  expect(Math.abs(peakFrequency(steadyOutput, outputRate) - frequency)).toBeLessThanOrEqual(0.5);
  expect(Math.abs(rmsDb(steadyOutput) - rmsDb(steadyState(input, inputRate)))).toBeLessThanOrEqual(1);
  const toneAmplitude = amplitudeAt(steadyOutput, outputRate, frequency);
  for (const image of images(inputRate, outputRate, frequency)) {
    expect(decibels(amplitudeAt(steadyOutput, outputRate, image) / toneAmplitude)).toBeLessThanOrEqual(-40);
  }
}

function attenuationDb(input: Int16Array, inputRate: SampleRate, output: Int16Array, outputRate: SampleRate): number {
  return rmsDb(steadyState(output, outputRate)) - rmsDb(steadyState(input, inputRate));
}

/** The real paths: carrier G.711 at 8 kHz up to a provider's rate, and a provider's PCM down to carrier G.711. */
function throughCall(law: (typeof LAWS)[number], inputRate: SampleRate, outputRate: SampleRate, signal: Int16Array): Int16Array {
  const frame = inputRate / 50;
  if (inputRate === 8000) return resample(inputRate, outputRate, decoded(law, encoded(law, signal)), [frame]);
  return decoded(law, encoded(law, resample(inputRate, outputRate, signal, [frame])));
}

describe.each(LAWS)("a tone through $name and the resampler", (law) => {
  describe.each(RATE_PAIRS.filter((pair) => pair.includes(8000)))("%i Hz → %i Hz", (inputRate, outputRate) => {
    it.each([300, 1000, 3000])("keeps a %i Hz tone's frequency and level (within 1 dB), with no image", (frequency) => {
      const input = tone(frequency, inputRate, 1);
      expectFaithfulTone(input, inputRate, throughCall(law, inputRate, outputRate, input), outputRate, frequency);
    });
  });

  describe.each([16000, 24000] as const)("%i Hz → 8000 Hz", (inputRate) => {
    it.each([4500, 6000, 7900, 11000].filter((frequency) => frequency < inputRate / 2))(
      "attenuates a %i Hz tone, above the new Nyquist, by at least 40 dB",
      (frequency) => {
        const input = tone(frequency, inputRate, 1);
        const output = throughCall(law, inputRate, 8000, input);
        expect(attenuationDb(input, inputRate, output, 8000)).toBeLessThanOrEqual(-40);
      },
    );
  });
});

describe.each([
  [16000, 24000],
  [24000, 16000],
] as const)("a wideband tone %i Hz → %i Hz", (inputRate, outputRate) => {
  it.each([300, 3000, 6500])("keeps a %i Hz tone's frequency and level (within 1 dB), with no image", (frequency) => {
    const input = tone(frequency, inputRate, 1);
    const output = resample(inputRate, outputRate, input, [inputRate / 50]);
    expectFaithfulTone(input, inputRate, output, outputRate, frequency);
  });
});

it("attenuates a 10 kHz tone by at least 40 dB from 24 kHz to 16 kHz", () => {
  const input = tone(10000, 24000, 1);
  expect(attenuationDb(input, 24000, resample(24000, 16000, input, [480]), 16000)).toBeLessThanOrEqual(-40);
});

/** Independent oracle for little-endian PCM16: DataView reads the bytes one by one. */
function readWithDataView(bytes: Uint8Array): Int16Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Int16Array.from({ length: bytes.length / 2 }, (_, i) => view.getInt16(2 * i, true));
}

describe("PCM16LE", () => {
  const random = seededRandom(16);
  const randomBytes = Uint8Array.from({ length: 960 }, () => Math.floor(random() * 256));

  it.each([0, 1])("decodes and re-encodes bytes at byte offset %i", (offset) => {
    const bytes = new Uint8Array(new ArrayBuffer(randomBytes.length + 2), offset, randomBytes.length);
    bytes.set(randomBytes);
    const samples = new Int16Array(bytes.length / 2 + 3);
    expect(decodePcm16le(bytes, samples)).toBe(480);
    expect(samples.subarray(0, 480)).toEqual(readWithDataView(randomBytes));

    const reencoded = new Uint8Array(new ArrayBuffer(bytes.length + 2), offset, bytes.length);
    expect(encodePcm16le(samples.subarray(0, 480), reencoded)).toBe(960);
    expect(reencoded).toEqual(randomBytes);
  });

  it("is little-endian and two's complement", () => {
    const bytes = new Uint8Array([0x34, 0x12, 0xff, 0xff, 0x00, 0x80, 0xff, 0x7f]);
    const samples = new Int16Array(4);
    decodePcm16le(bytes, samples);
    expect(samples).toEqual(new Int16Array([0x1234, -1, -32768, 32767]));
  });

  it("refuses an odd byte count and outputs that are too small", () => {
    expect(() => decodePcm16le(new Uint8Array(3), new Int16Array(2))).toThrow(RangeError);
    expect(() => decodePcm16le(new Uint8Array(4), new Int16Array(1))).toThrow(RangeError);
    expect(() => encodePcm16le(new Int16Array(2), new Uint8Array(3))).toThrow(RangeError);
  });
});

/** Hides the runtime's native base64 on one array, so the atob/btoa fallback runs on it. */
function withoutNativeBase64(bytes: Uint8Array): Uint8Array {
  Object.defineProperty(bytes, "toBase64", { value: undefined });
  Object.defineProperty(bytes, "setFromBase64", { value: undefined });
  return bytes;
}

describe.each([
  ["native", (bytes: Uint8Array) => bytes],
  ["atob/btoa fallback", withoutNativeBase64],
])("base64 (%s)", (_, prepare) => {
  const random = seededRandom(64);
  const lengths = [0, 1, 2, 3, 4, 159, 160, 161, 960];

  it("encodes as btoa does and decodes back, for every padding length", () => {
    for (const length of lengths) {
      const bytes = prepare(Uint8Array.from({ length }, () => Math.floor(random() * 256)));
      const text = encodeBase64(bytes);
      expect(text).toBe(btoa(String.fromCharCode(...bytes)));
      const output = prepare(new Uint8Array(length + 4));
      expect(decodeBase64Into(text, output)).toBe(length);
      expect(output.subarray(0, length)).toEqual(Uint8Array.from(bytes));
    }
  });

  it("accepts missing padding and rejects characters outside the alphabet", () => {
    const output = prepare(new Uint8Array(8));
    expect(decodeBase64Into("AQID/w", output)).toBe(4);
    expect(output.subarray(0, 4)).toEqual(new Uint8Array([1, 2, 3, 255]));
    expect(() => decodeBase64Into("AQ*D", prepare(new Uint8Array(8)))).toThrow();
  });

  it("refuses an output that is too small", () => {
    expect(() => decodeBase64Into("AQIDBAUG", prepare(new Uint8Array(5)))).toThrow(RangeError);
  });
});

/** The per-call path itself: base64 frames through one transcoder per direction, as the call's object uses them. */
describe("the call's transcoders", () => {
  const toFrames = (bytes: Uint8Array, frameBytes: number) => {
    const frames: string[] = [];
    for (let offset = 0; offset < bytes.length; offset += frameBytes)
      frames.push(encodeBase64(bytes.subarray(offset, offset + frameBytes)));
    return frames;
  };
  const joined = (frames: string[]) => {
    const parts = frames.map((frame) => {
      const bytes = new Uint8Array(frame.length);
      return bytes.subarray(0, decodeBase64Into(frame, bytes));
    });
    const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  };
  const pcmBytes = (samples: Int16Array) => {
    const bytes = new Uint8Array(samples.length * 2);
    encodePcm16le(samples, bytes);
    return bytes;
  };
  const pcmSamples = (bytes: Uint8Array) => {
    const samples = new Int16Array(bytes.length / 2);
    decodePcm16le(bytes, samples);
    return samples;
  };

  it("passes equal formats through untouched (Twilio µ-law to OpenAI audio/pcmu)", () => {
    const transcode = createTranscoder({ encoding: "pcmu", sampleRate: 8000 }, { encoding: "pcmu", sampleRate: 8000 });
    expect(transcode("//79/A==")).toBe("//79/A==");
  });

  it("turns a provider's 24 kHz PCM into carrier µ-law frame by frame, keeping a tone and dropping what 8 kHz cannot carry", () => {
    const provider = { encoding: "pcm16", sampleRate: 24000 } as const;
    const carrier = { encoding: "pcmu", sampleRate: 8000 } as const;
    const voice = tone(1000, 24000, 1);
    const heard = decoded(LAWS[0], joined(toFrames(pcmBytes(voice), 960).map(createTranscoder(provider, carrier))));
    expect(heard.length).toBe(8000);
    expectFaithfulTone(voice, 24000, heard, 8000, 1000);
    const whistle = tone(9000, 24000, 1);
    const aliased = decoded(LAWS[0], joined(toFrames(pcmBytes(whistle), 960).map(createTranscoder(provider, carrier))));
    expect(attenuationDb(whistle, 24000, aliased, 8000)).toBeLessThanOrEqual(-40);
  });

  it("turns carrier A-law into Gemini's 16 kHz PCM and µ-law into A-law by table", () => {
    const speech = tone(440, 8000, 1);
    const frames = toFrames(encoded(LAWS[1], speech), 160);
    const wideband = pcmSamples(
      joined(frames.map(createTranscoder({ encoding: "pcma", sampleRate: 8000 }, { encoding: "pcm16", sampleRate: 16000 }))),
    );
    expect(wideband.length).toBe(16000);
    expectFaithfulTone(speech, 8000, wideband, 16000, 440);
    const mulawCodes = encoded(LAWS[0], speech);
    const asAlaw = joined(
      toFrames(mulawCodes, 160).map(createTranscoder({ encoding: "pcmu", sampleRate: 8000 }, { encoding: "pcma", sampleRate: 8000 })),
    );
    expect(asAlaw).toEqual(encoded(LAWS[1], decoded(LAWS[0], mulawCodes)));
  });
});
