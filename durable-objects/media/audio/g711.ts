// Hand-written rather than a library: this runs on every 20 ms frame of every call (the per-frame hot path).

/**
 * G.711 µ-law and A-law, bit-exact with the ITU-T reference software (G.191 STL `g711.c`, `ulaw_compress`,
 * `alaw_compress`, `*_expand`). Decoding agrees with every common implementation. Encoding differs from the
 * `alawmulaw` package (and, for µ-law, some copies of Sun's g711.c) only for negative inputs lying exactly on a
 * decision threshold: the reference takes the one's complement of a negative sample before quantizing, those
 * take its magnitude, so the two land one quantization step apart there.
 *
 * Every function writes into a caller-provided array and returns the number of samples written; nothing is
 * allocated per frame. An output shorter than the input is a caller bug and throws.
 */

/** µ-law keeps the 14 most significant bits of a 16-bit sample; the encoder table is indexed by them. */
const MULAW_INDEX_SHIFT = 2;
const MULAW_INDEX_MASK = 0x3fff;
/** A-law is a 13-bit format whose finest step is two units, so the 12 most significant bits decide the code. */
const ALAW_INDEX_SHIFT = 4;
const ALAW_INDEX_MASK = 0x0fff;

/** Linear value of a µ-law code: ((mantissa·8 + 132) << exponent) − 132; codes are sent bit-inverted. */
function mulawCodeToLinear(code: number): number {
  const inverted = ~code & 0xff;
  const exponent = (inverted >> 4) & 0x07;
  const magnitude = ((((inverted & 0x0f) << 3) + 0x84) << exponent) - 0x84;
  return inverted & 0x80 ? -magnitude : magnitude;
}

/** Linear value of each A-law code: the middle of its quantization interval; even bits are transmitted inverted. */
function alawCodeToLinear(code: number): number {
  const toggled = code ^ 0x55;
  const exponent = (toggled >> 4) & 0x07;
  const mantissa = toggled & 0x0f;
  const magnitude = exponent === 0 ? (mantissa << 4) + 8 : (((mantissa | 0x10) << 4) + 8) << (exponent - 1);
  return toggled & 0x80 ? magnitude : -magnitude;
}

/** µ-law code of a sample given as its 14 most significant bits (two's complement, −8192..8191). */
function mulawCodeOfTop14Bits(top14: number): number {
  // One's complement for negatives, then the +33 bias that makes segment boundaries powers of two.
  const biased = Math.min((top14 < 0 ? ~top14 : top14) + 33, 0x1fff);
  const exponent = 26 - Math.clz32(biased); // biased ≥ 32, so exponent is 0..7
  const mantissa = (biased >> (exponent + 1)) & 0x0f;
  return ((exponent << 4) | mantissa) ^ (top14 < 0 ? 0x7f : 0xff);
}

/** A-law code of a sample given as its 12 most significant bits (two's complement, −2048..2047). */
function alawCodeOfTop12Bits(top12: number): number {
  const magnitude = top12 < 0 ? ~top12 : top12; // one's complement: 0..2047
  let code: number;
  if (magnitude < 16) {
    code = magnitude;
  } else {
    const exponent = 28 - Math.clz32(magnitude); // 1..7
    code = (exponent << 4) | ((magnitude >> (exponent - 1)) & 0x0f);
  }
  return (top12 < 0 ? code : code | 0x80) ^ 0x55;
}

function buildTable<T extends Int16Array | Uint8Array>(table: T, entryOf: (index: number) => number): T {
  for (let index = 0; index < table.length; index++) table[index] = entryOf(index);
  return table;
}

/** Sign-extends a table index back to the signed high bits of the sample it stands for. */
const signExtend = (index: number, bits: number): number => (index << (32 - bits)) >> (32 - bits);

const MULAW_DECODE = buildTable(new Int16Array(256), mulawCodeToLinear);
const ALAW_DECODE = buildTable(new Int16Array(256), alawCodeToLinear);
const MULAW_ENCODE = buildTable(new Uint8Array(MULAW_INDEX_MASK + 1), (index) => mulawCodeOfTop14Bits(signExtend(index, 14)));
const ALAW_ENCODE = buildTable(new Uint8Array(ALAW_INDEX_MASK + 1), (index) => alawCodeOfTop12Bits(signExtend(index, 12)));
const mulawOf = (sample: number): number => MULAW_ENCODE[(sample >> MULAW_INDEX_SHIFT) & MULAW_INDEX_MASK]!;
const alawOf = (sample: number): number => ALAW_ENCODE[(sample >> ALAW_INDEX_SHIFT) & ALAW_INDEX_MASK]!;
/** Transcoding is defined as decode-then-encode, i.e. exactly what a linear tandem would produce. */
const MULAW_TO_ALAW = buildTable(new Uint8Array(256), (code) => alawOf(MULAW_DECODE[code]!));
const ALAW_TO_MULAW = buildTable(new Uint8Array(256), (code) => mulawOf(ALAW_DECODE[code]!));

function assertRoom(inputLength: number, outputLength: number): void {
  if (outputLength < inputLength) {
    throw new RangeError(`G.711 output holds ${outputLength} samples, input has ${inputLength}`);
  }
}

export function decodeMulaw(input: Uint8Array, output: Int16Array): number {
  assertRoom(input.length, output.length);
  for (let i = 0; i < input.length; i++) output[i] = MULAW_DECODE[input[i]!]!;
  return input.length;
}

export function decodeAlaw(input: Uint8Array, output: Int16Array): number {
  assertRoom(input.length, output.length);
  for (let i = 0; i < input.length; i++) output[i] = ALAW_DECODE[input[i]!]!;
  return input.length;
}

export function encodeMulaw(input: Int16Array, output: Uint8Array): number {
  assertRoom(input.length, output.length);
  for (let i = 0; i < input.length; i++) {
    output[i] = MULAW_ENCODE[(input[i]! >> MULAW_INDEX_SHIFT) & MULAW_INDEX_MASK]!;
  }
  return input.length;
}

export function encodeAlaw(input: Int16Array, output: Uint8Array): number {
  assertRoom(input.length, output.length);
  for (let i = 0; i < input.length; i++) {
    output[i] = ALAW_ENCODE[(input[i]! >> ALAW_INDEX_SHIFT) & ALAW_INDEX_MASK]!;
  }
  return input.length;
}

/** µ-law bytes to A-law bytes; `output` may be `input` (in place). */
export function transcodeMulawToAlaw(input: Uint8Array, output: Uint8Array): number {
  assertRoom(input.length, output.length);
  for (let i = 0; i < input.length; i++) output[i] = MULAW_TO_ALAW[input[i]!]!;
  return input.length;
}

/** A-law bytes to µ-law bytes; `output` may be `input` (in place). */
export function transcodeAlawToMulaw(input: Uint8Array, output: Uint8Array): number {
  assertRoom(input.length, output.length);
  for (let i = 0; i < input.length; i++) output[i] = ALAW_TO_MULAW[input[i]!]!;
  return input.length;
}
