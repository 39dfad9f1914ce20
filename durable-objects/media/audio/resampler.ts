// Hand-written rather than a library: this runs on every 20 ms frame of every call (the per-frame hot path).

/**
 * Streaming rational resampler between the telephony and voice-AI rates: 8 kHz (G.711), 16 kHz (Gemini input,
 * browsers) and 24 kHz (Gemini and OpenAI output). Conceptually it inserts L−1 zeros between input samples,
 * low-pass filters at L·fin, and keeps every M-th sample (fout/fin = L/M ∈ {2, 3, 3/2} and inverses); the
 * polyphase form computes only the kept samples and skips the zero products.
 *
 * Filter: a Kaiser-windowed sinc designed at the upsampled rate. With F the Nyquist frequency of the lower of
 * the two rates, the passband ends at 0.85·F (3.4 kHz when 8 kHz is involved, 6.8 kHz for 16↔24 kHz), the
 * stopband starts at F with at least 60 dB attenuation (Kaiser β = 5.65), passband ripple is under 0.01 dB,
 * and the −6 dB point is 0.925·F. So nothing aliases into the band on decimation and images are removed on
 * interpolation, well below G.711's own ~38 dB quantization noise. Kaiser's length estimate gives 49 taps per
 * phase for 8→16, 8→24 and 16→24 kHz, 74 for 24→16, 98 for 16→8 and 147 for 24→8 kHz: that many
 * multiply-adds per output sample. The filter is linear-phase, so the delay is (taps − 1)/2 samples at the
 * upsampled rate: about 3 ms in every direction.
 *
 * The last taps−1 input samples are kept between calls, so feeding a signal in 20 ms frames (or any other
 * split) gives exactly the samples that one call with the whole signal gives: no clicks at frame boundaries.
 * Use one instance per direction per call. Nothing is allocated per frame once the working buffer has grown
 * to the frame size.
 */
export type SampleRate = 8000 | 16000 | 24000;

const PASSBAND_FRACTION = 0.85;
const STOPBAND_ATTENUATION_DB = 60;

function greatestCommonDivisor(a: number, b: number): number {
  return b === 0 ? a : greatestCommonDivisor(b, a % b);
}

/** Modified Bessel function of the first kind, order 0, by its power series (converges fast for x ≤ 20). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; term > sum * 1e-16; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
  }
  return sum;
}

/** Low-pass prototype at the upsampled rate, its length a multiple of `interpolation`, DC gain `interpolation`. */
function designLowPass(interpolation: number, inputRate: number, outputRate: number): Float64Array {
  const upsampledRate = interpolation * inputRate;
  const nyquist = Math.min(inputRate, outputRate) / 2;
  const passbandEdge = PASSBAND_FRACTION * nyquist;
  const transitionRadians = (2 * Math.PI * (nyquist - passbandEdge)) / upsampledRate;
  const estimatedLength = Math.ceil((STOPBAND_ATTENUATION_DB - 7.95) / (2.285 * transitionRadians)) + 1;
  const length = Math.ceil(estimatedLength / interpolation) * interpolation;
  const cutoff = (passbandEdge + nyquist) / 2 / upsampledRate; // cycles per upsampled sample
  const beta = 0.1102 * (STOPBAND_ATTENUATION_DB - 8.7);
  const center = (length - 1) / 2;

  const taps = new Float64Array(length);
  let sum = 0;
  for (let n = 0; n < length; n++) {
    const offset = n - center;
    const sinc = offset === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * offset) / (Math.PI * offset);
    const window = besselI0(beta * Math.sqrt(1 - (offset / center) ** 2)) / besselI0(beta);
    taps[n] = sinc * window;
    sum += taps[n]!;
  }
  // Zero-stuffing divides the level by L: a DC gain of exactly L restores it.
  for (let n = 0; n < length; n++) taps[n] = (taps[n]! * interpolation) / sum;
  return taps;
}

export class Resampler {
  private readonly interpolation: number;
  private readonly decimation: number;
  private readonly tapsPerPhase: number;
  /** Phase p's taps h[p], h[p+L], h[p+2L]… in reverse (h[p], for the newest sample, last): loops run forwards. */
  private readonly phaseTaps: Float64Array;
  /** The last tapsPerPhase−1 input samples (history), followed by the current input. */
  private work: Int16Array;
  /** Polyphase branch of the next output sample. */
  private phase = 0;
  /** Index, in the next input, of the newest sample the next output needs. */
  private nextInputIndex = 0;

  constructor(inputRate: SampleRate, outputRate: SampleRate) {
    if (inputRate === outputRate) throw new RangeError(`Nothing to resample: both rates are ${inputRate} Hz`);
    const divisor = greatestCommonDivisor(inputRate, outputRate);
    this.interpolation = outputRate / divisor;
    this.decimation = inputRate / divisor;

    const prototype = designLowPass(this.interpolation, inputRate, outputRate);
    this.tapsPerPhase = prototype.length / this.interpolation;
    this.phaseTaps = new Float64Array(prototype.length);
    for (let phase = 0; phase < this.interpolation; phase++) {
      for (let t = 0; t < this.tapsPerPhase; t++) {
        const newestLast = phase * this.tapsPerPhase + this.tapsPerPhase - 1 - t;
        this.phaseTaps[newestLast] = prototype[phase + t * this.interpolation]!;
      }
    }
    this.work = new Int16Array(this.tapsPerPhase - 1);
  }

  /** The most samples `process` can write for `inputLength` input samples: size output buffers with it. */
  maxOutputLength(inputLength: number): number {
    return Math.ceil((inputLength * this.interpolation) / this.decimation);
  }

  /** Multiply-adds per output sample (the filter's cost). */
  get tapsPerOutput(): number {
    return this.tapsPerPhase;
  }

  /**
   * Resamples the next stretch of the stream into `output` (at least `maxOutputLength(input.length)` long)
   * and returns the number of samples written, which may be fewer (the rest is owed to the next call).
   */
  process(input: Int16Array, output: Int16Array): number {
    const needed = this.maxOutputLength(input.length);
    if (output.length < needed) {
      throw new RangeError(`Resampler output holds ${output.length} samples, needs ${needed}`);
    }
    const historyLength = this.tapsPerPhase - 1;
    if (this.work.length < historyLength + input.length) {
      const grown = new Int16Array(historyLength + input.length);
      grown.set(this.work.subarray(0, historyLength));
      this.work = grown;
    }
    const work = this.work;
    work.set(input, historyLength);

    const taps = this.phaseTaps;
    const tapsPerPhase = this.tapsPerPhase;
    const interpolation = this.interpolation;
    const decimation = this.decimation;
    let phase = this.phase;
    let inputIndex = this.nextInputIndex;
    let written = 0;
    while (inputIndex < input.length) {
      // work[inputIndex + historyLength] is input[inputIndex], so the window starts at work[inputIndex].
      const first = phase * tapsPerPhase;
      let sum = 0;
      for (let t = 0; t < tapsPerPhase; t++) sum += taps[first + t]! * work[inputIndex + t]!;
      const rounded = Math.round(sum);
      output[written++] = Math.min(32767, Math.max(-32768, rounded));
      phase += decimation;
      while (phase >= interpolation) {
        phase -= interpolation;
        inputIndex++;
      }
    }
    this.phase = phase;
    this.nextInputIndex = inputIndex - input.length;
    work.copyWithin(0, input.length, input.length + historyLength);
    return written;
  }

  /** Forgets the stream so far (e.g. after a barge-in `clear`), so an old tail cannot leak into new audio. */
  reset(): void {
    this.work.fill(0);
    this.phase = 0;
    this.nextInputIndex = 0;
  }
}
