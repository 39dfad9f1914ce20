/**
 * The audio hot-path benchmark cases, runnable in any runtime. test/bench/audio.bench.ts runs them in Node,
 * then loads this file as a Worker entry to run them again in workerd, where the call objects actually run.
 * Inputs are seeded, so every run times the same frames; each contender is warmed up before it is timed.
 */
import * as alawmulawExports from "alawmulaw";
import { decodeAlaw, decodeMulaw, encodeAlaw, encodeMulaw, transcodeMulawToAlaw } from "../../durable-objects/media/audio/g711.ts";
import { decodeBase64Into, decodePcm16le, encodeBase64, encodePcm16le } from "../../durable-objects/media/audio/pcm16.ts";
import { Resampler, type SampleRate } from "../../durable-objects/media/audio/resampler.ts";
import { Recorder } from "../../durable-objects/recording/recorder.ts";

// Node loads the package's CommonJS build (everything under `default`); bundlers load its ES module build.
const commonJsExports: unknown = Reflect.get(alawmulawExports, "default");
const { alaw, mulaw } = (commonJsExports ?? alawmulawExports) as typeof alawmulawExports;

const WARMUP_MS = 150;
const ROUNDS = 5;
const ROUND_MS = 60;
const CALLS_PER_BATCH = 100;
const FRAMES_PER_SECOND = 50; // 20 ms frames

interface Contender {
  name: string;
  run: () => void;
}

interface BenchCase {
  title: string;
  /** Audio samples one call handles: a 20 ms frame at the case's input rate. */
  samplesPerFrame: number;
  /** Ours first; the others are compared with it. */
  contenders: Contender[];
}

export interface Measured {
  title: string;
  samplesPerFrame: number;
  results: { name: string; nsPerFrame: number }[];
}

/** Best of several timed rounds (the round least disturbed by GC and the OS). */
function nsPerCall(run: () => void): number {
  const warmupEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmupEnd) for (let i = 0; i < CALLS_PER_BATCH; i++) run();
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = performance.now();
    let calls = 0;
    let elapsed = 0;
    do {
      for (let i = 0; i < CALLS_PER_BATCH; i++) run();
      calls += CALLS_PER_BATCH;
      elapsed = performance.now() - start;
    } while (elapsed < ROUND_MS);
    best = Math.min(best, (elapsed * 1e6) / calls);
  }
  return best;
}

/** One second of speech-band content (three tones and noise) at `rate`, from a fixed seed. */
function seededSignal(rate: number): Int16Array {
  let state = rate;
  const noise = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 4294967296 - 0.5;
  };
  return Int16Array.from({ length: rate }, (_, i) => {
    const t = i / rate;
    const voiced = 6000 * Math.sin(2 * Math.PI * 180 * t) + 3000 * Math.sin(2 * Math.PI * 720 * t);
    return Math.round(voiced + 1500 * Math.sin(2 * Math.PI * 2500 * t) + 2000 * noise());
  });
}

/** Hands out consecutive 20 ms frames of a one-second signal, wrapping around. */
function frameCycler<T extends Int16Array | Uint8Array>(signal: T, frameLength: number): () => T {
  let start = 0;
  return () => {
    const frame = signal.subarray(start, start + frameLength) as T;
    start = (start + frameLength) % signal.length;
    return frame;
  };
}

/** Allocating contenders fold their result in here, so the engine cannot drop their work as unused. */
let sink = 0;

function codecCases(): BenchCase[] {
  const frameLength = 8000 / FRAMES_PER_SECOND;
  const pcm = seededSignal(8000);
  const mulawCodes = new Uint8Array(pcm.length);
  const alawCodes = new Uint8Array(pcm.length);
  encodeMulaw(pcm, mulawCodes);
  encodeAlaw(pcm, alawCodes);
  const nextPcm = frameCycler(pcm, frameLength);
  const nextMulaw = frameCycler(mulawCodes, frameLength);
  const nextAlaw = frameCycler(alawCodes, frameLength);
  const pcmOut = new Int16Array(frameLength);
  const codesOut = new Uint8Array(frameLength);

  type Reference = typeof mulaw;
  const decodeCase = (law: string, next: () => Uint8Array, ours: typeof decodeMulaw, theirs: Reference): BenchCase => ({
    title: `${law} decode`,
    samplesPerFrame: frameLength,
    contenders: [
      { name: "switchboard", run: () => ours(next(), pcmOut) },
      { name: "alawmulaw decode()", run: () => (sink ^= theirs.decode(next())[0]!) },
      {
        name: "alawmulaw decodeSample() loop",
        run: () => {
          const frame = next();
          for (let i = 0; i < frame.length; i++) pcmOut[i] = theirs.decodeSample(frame[i]!);
        },
      },
    ],
  });
  const encodeCase = (law: string, ours: typeof encodeMulaw, theirs: Reference): BenchCase => ({
    title: `${law} encode`,
    samplesPerFrame: frameLength,
    contenders: [
      { name: "switchboard", run: () => ours(nextPcm(), codesOut) },
      { name: "alawmulaw encode()", run: () => (sink ^= theirs.encode(nextPcm())[0]!) },
      {
        name: "alawmulaw encodeSample() loop",
        run: () => {
          const frame = nextPcm();
          for (let i = 0; i < frame.length; i++) codesOut[i] = theirs.encodeSample(frame[i]!);
        },
      },
    ],
  });
  return [
    decodeCase("µ-law", nextMulaw, decodeMulaw, mulaw),
    encodeCase("µ-law", encodeMulaw, mulaw),
    decodeCase("A-law", nextAlaw, decodeAlaw, alaw),
    encodeCase("A-law", encodeAlaw, alaw),
    {
      title: "µ-law → A-law",
      samplesPerFrame: frameLength,
      contenders: [
        { name: "switchboard", run: () => transcodeMulawToAlaw(nextMulaw(), codesOut) },
        { name: "alawmulaw decode() + encode()", run: () => (sink ^= alaw.encode(mulaw.decode(nextMulaw()))[0]!) },
      ],
    },
  ];
}

function resamplerCases(): BenchCase[] {
  const directions: [SampleRate, SampleRate][] = [
    [8000, 16000],
    [8000, 24000],
    [16000, 24000],
    [24000, 16000],
    [16000, 8000],
    [24000, 8000],
  ];
  return directions.map(([inputRate, outputRate]) => {
    const resampler = new Resampler(inputRate, outputRate);
    const frameLength = inputRate / FRAMES_PER_SECOND;
    const next = frameCycler(seededSignal(inputRate), frameLength);
    const output = new Int16Array(resampler.maxOutputLength(frameLength));
    return {
      title: `resample ${inputRate / 1000}→${outputRate / 1000} kHz (${resampler.tapsPerOutput} taps)`,
      samplesPerFrame: frameLength,
      contenders: [{ name: "switchboard", run: () => resampler.process(next(), output) }],
    };
  });
}

/** The helpers the codebase used before (workers/shared/encoding.ts): binary strings through btoa/atob. */
function btoaOfBytes(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!);
  return btoa(binary);
}

function atobIntoBytes(text: string, output: Uint8Array): void {
  const binary = atob(text);
  for (let i = 0; i < binary.length; i++) output[i] = binary.charCodeAt(i);
}

function payloadCases(): BenchCase[] {
  const pcm24k = seededSignal(24000).subarray(0, 24000 / FRAMES_PER_SECOND);
  const pcmBytes = new Uint8Array(pcm24k.length * 2);
  encodePcm16le(pcm24k, pcmBytes);
  const samplesOut = new Int16Array(pcm24k.length);
  const view = new DataView(pcmBytes.buffer);
  const mulawFrame = new Uint8Array(160);
  encodeMulaw(seededSignal(8000).subarray(0, 160), mulawFrame);

  const base64Cases = (label: string, bytes: Uint8Array, samplesPerFrame: number): BenchCase[] => {
    const text = encodeBase64(bytes);
    const decoded = new Uint8Array(bytes.length);
    return [
      {
        title: `base64 encode ${label}`,
        samplesPerFrame,
        contenders: [
          { name: "switchboard", run: () => (sink ^= encodeBase64(bytes).length) },
          { name: "btoa of a binary string", run: () => (sink ^= btoaOfBytes(bytes).length) },
        ],
      },
      {
        title: `base64 decode ${label}`,
        samplesPerFrame,
        contenders: [
          { name: "switchboard", run: () => decodeBase64Into(text, decoded) },
          { name: "atob + charCodeAt loop", run: () => atobIntoBytes(text, decoded) },
        ],
      },
    ];
  };
  return [
    {
      title: "PCM16LE bytes → samples (24 kHz frame)",
      samplesPerFrame: pcm24k.length,
      contenders: [
        { name: "switchboard", run: () => decodePcm16le(pcmBytes, samplesOut) },
        {
          name: "DataView.getInt16 loop",
          run: () => {
            for (let i = 0; i < samplesOut.length; i++) samplesOut[i] = view.getInt16(2 * i, true);
          },
        },
      ],
    },
    ...base64Cases("160 B µ-law frame", mulawFrame, 160),
    ...base64Cases("960 B PCM16 24 kHz frame", pcmBytes, pcm24k.length),
  ];
}

/** Whole per-frame paths of a call, from the carrier's base64 to the provider's and back. */
function pipelineCases(): BenchCase[] {
  const carrierSignal = seededSignal(8000);
  const providerSignal = seededSignal(24000);
  const carrierFrames = Array.from({ length: FRAMES_PER_SECOND }, (_, frame) => {
    const codes = new Uint8Array(160);
    encodeMulaw(carrierSignal.subarray(frame * 160, (frame + 1) * 160), codes);
    return encodeBase64(codes);
  });
  const providerFrames = Array.from({ length: FRAMES_PER_SECOND }, (_, frame) => {
    const bytes = new Uint8Array(960);
    encodePcm16le(providerSignal.subarray(frame * 480, (frame + 1) * 480), bytes);
    return encodeBase64(bytes);
  });
  let frame = 0;
  const nextFrame = (): number => (frame = (frame + 1) % FRAMES_PER_SECOND);

  const upsampler = new Resampler(8000, 16000);
  const inCodes = new Uint8Array(160);
  const inPcm = new Int16Array(160);
  const upsampled = new Int16Array(upsampler.maxOutputLength(160));
  const upsampledBytes = new Uint8Array(upsampled.length * 2);

  const downsampler = new Resampler(24000, 8000);
  const outBytes = new Uint8Array(960);
  const outPcm = new Int16Array(480);
  const downsampled = new Int16Array(downsampler.maxOutputLength(480));
  const outCodes = new Uint8Array(downsampled.length);

  return [
    {
      title: "Twilio → Gemini: base64 µ-law 8k → base64 PCM16 16k",
      samplesPerFrame: 160,
      contenders: [
        {
          name: "switchboard",
          run: () => {
            decodeBase64Into(carrierFrames[nextFrame()]!, inCodes);
            decodeMulaw(inCodes, inPcm);
            const written = upsampler.process(inPcm, upsampled);
            encodePcm16le(upsampled.subarray(0, written), upsampledBytes);
            sink ^= encodeBase64(upsampledBytes.subarray(0, written * 2)).length;
          },
        },
      ],
    },
    {
      title: "Gemini → Twilio: base64 PCM16 24k → base64 µ-law 8k",
      samplesPerFrame: 480,
      contenders: [
        {
          name: "switchboard",
          run: () => {
            decodeBase64Into(providerFrames[nextFrame()]!, outBytes);
            decodePcm16le(outBytes, outPcm);
            const written = downsampler.process(outPcm, downsampled);
            encodeMulaw(downsampled.subarray(0, written), outCodes);
            sink ^= encodeBase64(outCodes.subarray(0, written)).length;
          },
        },
      ],
    },
  ];
}

/**
 * The recording's share of a Twilio call (durable-objects/recording/recorder.ts), per 20 ms of call: a caller frame,
 * an agent frame with its mark, the mark's echo, and the drain of the settled timeline every 10 s (its share).
 */
function recorderCases(): BenchCase[] {
  const signal = seededSignal(8000);
  const frames = Array.from({ length: FRAMES_PER_SECOND }, (_, frame) => {
    const codes = new Uint8Array(160);
    encodeMulaw(signal.subarray(frame * 160, (frame + 1) * 160), codes);
    return encodeBase64(codes);
  });
  const format = { encoding: "pcmu", sampleRate: 8000 } as const;
  const recorder = new Recorder();
  let frame = 0;
  return [
    {
      title: "Recording a Twilio call: caller + agent frame, mark echoed, 10 s drains",
      samplesPerFrame: 320,
      contenders: [
        {
          name: "switchboard",
          run: () => {
            const payload = frames[frame % FRAMES_PER_SECOND]!;
            const mark = `m${frame}`;
            recorder.caller(payload, format);
            recorder.agent(payload, format, "item", mark);
            recorder.heard(mark);
            if (++frame % (10 * FRAMES_PER_SECOND) === 0) sink ^= recorder.drain(false)?.bytes.length ?? 0;
          },
        },
      ],
    },
  ];
}

export function runAudioBench(): Measured[] {
  const measured = [...codecCases(), ...resamplerCases(), ...payloadCases(), ...pipelineCases(), ...recorderCases()].map((benchCase) => ({
    title: benchCase.title,
    samplesPerFrame: benchCase.samplesPerFrame,
    results: benchCase.contenders.map((contender) => ({ name: contender.name, nsPerFrame: nsPerCall(contender.run) })),
  }));
  return measured;
}

const speedup = (ratio: number): string => (ratio >= 1 ? `${ratio.toFixed(1)}× faster` : `${(1 / ratio).toFixed(1)}× slower`);

export function formatTable(runtime: string, measured: Measured[]): string {
  const header = ["case", "implementation", "ns / 20 ms frame", "M samples/s", "% of real time", "switchboard is"];
  const rows = measured.flatMap(({ title, samplesPerFrame, results }) =>
    results.map(({ name, nsPerFrame }, index) => [
      index === 0 ? title : "",
      name,
      nsPerFrame.toFixed(0),
      ((samplesPerFrame / nsPerFrame) * 1000).toFixed(1),
      ((nsPerFrame / (1e9 / FRAMES_PER_SECOND)) * 100).toFixed(4),
      index === 0 ? "" : speedup(nsPerFrame / results[0]!.nsPerFrame),
    ]),
  );
  const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => row[column]!.length)));
  // Names align left, figures right.
  const pad = (cell: string, column: number): string => (column < 2 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!));
  const line = (row: string[]): string => row.map(pad).join("  ");
  return [`\n${runtime}`, line(header), ...rows.map(line)].join("\n");
}

export default {
  fetch(): Response {
    return Response.json(runAudioBench());
  },
};
