import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { decodeAlaw, decodeMulaw, encodeMulaw } from "../../../durable-objects/media/audio/g711.ts";
import { eventually } from "./carriers.ts";
import { api } from "./identity.ts";

/** Reading recordings back in tests: the session's recording through the API, its signed link, the WAV parsed. */

/** µ-law bytes of a sine tone. */
export function toneBytes(hz: number, ms: number): Uint8Array {
  const samples = new Int16Array(8 * ms);
  for (let i = 0; i < samples.length; i++) samples[i] = Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / 8000));
  const bytes = new Uint8Array(samples.length);
  encodeMulaw(samples, bytes);
  return bytes;
}

export const silenceBytes = (ms: number) => new Uint8Array(8 * ms).fill(0xff);

export function mulawSamples(bytes: Uint8Array): Int16Array {
  const samples = new Int16Array(bytes.length);
  decodeMulaw(bytes, samples);
  return samples;
}

export interface Wav {
  /** 1 PCM16, 6 A-law, 7 µ-law. */
  formatTag: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  /** The channels decoded to linear samples (G.711 with the project's codec). */
  left: Int16Array;
  right: Int16Array;
}

/**
 * A RIFF/WAVE file read chunk by chunk, every size and derived field checked against the bytes: PCM16, or µ-law /
 * A-law with the 18-byte `fmt ` and the `fact` chunk (its sample frames) the WAVE spec asks of a non-PCM format.
 */
export function parseWav(bytes: Uint8Array): Wav {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = (offset: number) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  expect([text(0), text(8)]).toEqual(["RIFF", "WAVE"]);
  expect(view.getUint32(4, true)).toBe(bytes.length - 8);
  const chunks = new Map<string, { at: number; size: number }>();
  const order: string[] = [];
  for (let at = 12; at < bytes.length; ) {
    const size = view.getUint32(at + 4, true);
    chunks.set(text(at), { at: at + 8, size });
    order.push(text(at));
    at += 8 + size + (size & 1);
  }
  const fmt = chunks.get("fmt ")!;
  const data = chunks.get("data")!;
  expect(order.at(-1)).toBe("data");
  expect(data.at + data.size).toBe(bytes.length);
  const formatTag = view.getUint16(fmt.at, true);
  const channels = view.getUint16(fmt.at + 2, true);
  const sampleRate = view.getUint32(fmt.at + 4, true);
  const bitsPerSample = view.getUint16(fmt.at + 14, true);
  const blockAlign = view.getUint16(fmt.at + 12, true);
  expect(blockAlign).toBe((channels * bitsPerSample) / 8);
  expect(view.getUint32(fmt.at + 8, true)).toBe(sampleRate * blockAlign);
  const frames = data.size / blockAlign;
  expect(Number.isInteger(frames)).toBe(true);
  expect(channels).toBe(2);
  const left = new Int16Array(frames);
  const right = new Int16Array(frames);
  if (formatTag === 1) {
    expect([fmt.size, bitsPerSample]).toEqual([16, 16]);
    for (let i = 0; i < frames; i++) {
      left[i] = view.getInt16(data.at + 4 * i, true);
      right[i] = view.getInt16(data.at + 4 * i + 2, true);
    }
  } else {
    expect([6, 7]).toContain(formatTag);
    expect([fmt.size, bitsPerSample, view.getUint16(fmt.at + 16, true)]).toEqual([18, 8, 0]);
    expect(chunks.get("fact")?.size).toBe(4);
    expect(view.getUint32(chunks.get("fact")!.at, true)).toBe(frames);
    const codes = { left: new Uint8Array(frames), right: new Uint8Array(frames) };
    for (let i = 0; i < frames; i++) {
      codes.left[i] = bytes[data.at + 2 * i]!;
      codes.right[i] = bytes[data.at + 2 * i + 1]!;
    }
    const decode = formatTag === 7 ? decodeMulaw : decodeAlaw;
    decode(codes.left, left);
    decode(codes.right, right);
  }
  return { formatTag, channels, sampleRate, bitsPerSample, left, right };
}

/** The frequency of a clean tone, from its rising zero crossings (the edges skipped: filters ring there). */
export function frequencyOf(samples: Int16Array, rate: number): number {
  const body = samples.subarray(Math.floor(samples.length / 10), Math.floor((samples.length * 9) / 10));
  let crossings = 0;
  for (let i = 1; i < body.length; i++) if (body[i - 1]! < 0 && body[i]! >= 0) crossings++;
  return (crossings * rate) / body.length;
}

export interface RecordingView {
  id: string;
  durationMs: number;
  channels: number;
  format: string;
  url: string;
  expiresAt: string;
}

/** The session's recording once the ended call's object has written it. */
export async function recordingOf(token: string, sessionId: string): Promise<RecordingView> {
  const response = await eventually(async () => {
    const attempt = await api(`/api/v1/sessions/${sessionId}/recording`, { token });
    return attempt.status === 200 && attempt;
  }, 250);
  return (await response.json()) as RecordingView;
}

/** A signed link followed as a browser would: no bearer, no other header. */
export const download = (url: string) => exports.default.fetch(url);

/** The session's recording, downloaded through its signed link and parsed. */
export async function recordedWav(token: string, sessionId: string): Promise<Wav> {
  const response = await download((await recordingOf(token, sessionId)).url);
  expect(response.status).toBe(200);
  return parseWav(new Uint8Array(await response.arrayBuffer()));
}
