import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { decodeMulaw, encodeMulaw } from "../../../durable-objects/media/audio/g711.ts";
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
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  left: Int16Array;
  right: Int16Array;
}

/** A RIFF/WAVE file read field by field, with its sizes checked against the bytes. */
export function parseWav(bytes: Uint8Array): Wav {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = (offset: number) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  expect([text(0), text(8), text(12), text(36)]).toEqual(["RIFF", "WAVE", "fmt ", "data"]);
  expect(view.getUint32(4, true)).toBe(bytes.length - 8);
  expect(view.getUint16(20, true)).toBe(1);
  const dataBytes = view.getUint32(40, true);
  expect(dataBytes).toBe(bytes.length - 44);
  const channels = view.getUint16(22, true);
  const frames = dataBytes / (2 * channels);
  const left = new Int16Array(frames);
  const right = new Int16Array(frames);
  for (let i = 0; i < frames; i++) {
    left[i] = view.getInt16(44 + 4 * i, true);
    right[i] = view.getInt16(46 + 4 * i, true);
  }
  return { channels, sampleRate: view.getUint32(24, true), bitsPerSample: view.getUint16(34, true), left, right };
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
