/**
 * What the call's object (durable-objects/recording/) and the Worker (workers/routes/recordings.ts) agree on about a
 * recording's bytes: its format, where its parts live in R2, its WAV header. Imports nothing, so the recorder and
 * its benchmark load it anywhere (the signed links are recordings.ts).
 */

/** Telephony's rate: a phone call carries nothing above 4 kHz, and a browser's 16 kHz is resampled down to it. */
export const RECORDING_RATE = 8000;
/** Caller left, agent right. */
export const RECORDING_CHANNELS = 2 as const;

/**
 * How the samples are stored: a carrier's own G.711 (µ-law or A-law, one byte a sample) when the call's audio is
 * G.711 — recorded as it came off the wire, never decoded —, else PCM16 little-endian (web sessions).
 */
export type RecordingEncoding = "pcmu" | "pcma" | "pcm16";
export const RECORDING_ENCODINGS: readonly RecordingEncoding[] = ["pcmu", "pcma", "pcm16"];
export const sampleBytes = (encoding: RecordingEncoding) => (encoding === "pcm16" ? 2 : 1);
/** Bytes per sample frame (both channels, interleaved). */
export const frameBytes = (encoding: RecordingEncoding) => sampleBytes(encoding) * RECORDING_CHANNELS;
/** The byte that decodes to (next to) zero: µ-law 0xFF is 0, A-law 0xD5 is +8 (A-law has no zero), PCM16 0. */
export const silenceByte = (encoding: RecordingEncoding) => (encoding === "pcmu" ? 0xff : encoding === "pcma" ? 0xd5 : 0);

/** Every object of a session's recording lives under this prefix: erasure and retention delete by it. */
export const recordingPrefix = (tenantId: string, sessionId: string) => `recordings/${tenantId}/${sessionId}/`;
/**
 * A part of the recording: interleaved samples in `encoding`, in order. Named by when its object instance began
 * recording (ms since the epoch, 13 digits) and its number in that instance, so R2's lexical listing is the order
 * across an eviction without the successor having to list its predecessor's parts first.
 */
export const recordingPartKey = (prefix: string, instanceStartMs: number, seq: number, encoding: RecordingEncoding) =>
  `${recordingPartsPrefix(prefix)}${String(instanceStartMs).padStart(13, "0")}-${String(seq).padStart(6, "0")}.${encoding}`;
export const recordingPartsPrefix = (prefix: string) => `${prefix}parts/`;
/**
 * A part's encoding from its key. Parts written before encodings were recorded (`parts/00000000`, numbered from 0)
 * are PCM16, and sort before every named one.
 */
export function partEncoding(key: string): RecordingEncoding {
  const suffix = key.slice(key.lastIndexOf(".") + 1);
  return (RECORDING_ENCODINGS as readonly string[]).includes(suffix) ? (suffix as RecordingEncoding) : "pcm16";
}
/** Where a recording made before parts were served as they are lies: one joined WAV. Rows naming it still play. */
export const isJoinedWavKey = (key: string) => key.endsWith(".wav");

const FORMAT_TAG: Record<RecordingEncoding, number> = { pcm16: 1, pcma: 6, pcmu: 7 };
/** PCM's header: RIFF, `fmt ` (16 bytes), `data`. */
const PCM_HEADER_BYTES = 44;
/** A non-PCM format's: `fmt ` carries cbSize (18 bytes) and a `fact` chunk gives the sample frames, as the WAVE spec asks. */
const G711_HEADER_BYTES = 58;
export const wavHeaderBytes = (encoding: RecordingEncoding) => (encoding === "pcm16" ? PCM_HEADER_BYTES : G711_HEADER_BYTES);

/**
 * The RIFF/WAVE header of a two-channel recording at RECORDING_RATE in `encoding` holding `dataBytes` of samples:
 * format tag 1 (PCM16), 6 (A-law) or 7 (µ-law). Written by hand: a dozen fields, and no WAV package is installed.
 */
export function wavHeader(dataBytes: number, encoding: RecordingEncoding): Uint8Array {
  const size = wavHeaderBytes(encoding);
  const header = new Uint8Array(size);
  const view = new DataView(header.buffer);
  const ascii = (offset: number, text: string) => {
    for (let i = 0; i < text.length; i++) header[offset + i] = text.charCodeAt(i);
  };
  const pcm = encoding === "pcm16";
  ascii(0, "RIFF");
  view.setUint32(4, size - 8 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, pcm ? 16 : 18, true);
  view.setUint16(20, FORMAT_TAG[encoding], true);
  view.setUint16(22, RECORDING_CHANNELS, true);
  view.setUint32(24, RECORDING_RATE, true);
  view.setUint32(28, RECORDING_RATE * frameBytes(encoding), true);
  view.setUint16(32, frameBytes(encoding), true);
  view.setUint16(34, 8 * sampleBytes(encoding), true);
  if (!pcm) {
    view.setUint16(36, 0, true); // cbSize: no extension
    ascii(38, "fact");
    view.setUint32(42, 4, true);
    view.setUint32(46, dataBytes / frameBytes(encoding), true);
  }
  ascii(size - 8, "data");
  view.setUint32(size - 4, dataBytes, true);
  return header;
}

export const durationMsOf = (dataBytes: number, encoding: RecordingEncoding) =>
  Math.round((dataBytes / frameBytes(encoding) / RECORDING_RATE) * 1000);
