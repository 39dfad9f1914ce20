/**
 * The microphone's samples, on the audio thread: the AudioContext runs at 16 kHz (the browser resamples the device),
 * so this only turns float samples into PCM16 little-endian and cuts them into 20 ms frames (320 samples), each
 * posted with its RMS level for the input meter. Frames go to the main thread as transferred buffers: no copies.
 */
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
}
declare function registerProcessor(name: string, processor: new () => AudioWorkletProcessor): void;

const FRAME_SAMPLES = 320;

class CaptureProcessor extends AudioWorkletProcessor {
  private frame = new Int16Array(FRAME_SAMPLES);
  private filled = 0;
  private sumSquares = 0;

  process(inputs: Float32Array[][]): boolean {
    const channel = inputs[0]?.[0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const sample = Math.max(-1, Math.min(1, channel[i] ?? 0));
      this.sumSquares += sample * sample;
      this.frame[this.filled++] = sample < 0 ? sample * 0x8000 : sample * 0x7fff;
      if (this.filled === FRAME_SAMPLES) {
        const level = Math.sqrt(this.sumSquares / FRAME_SAMPLES);
        this.port.postMessage({ frame: this.frame.buffer, level }, [this.frame.buffer]);
        this.frame = new Int16Array(FRAME_SAMPLES);
        this.filled = 0;
        this.sumSquares = 0;
      }
    }
    return true;
  }
}

registerProcessor("switchboard-capture", CaptureProcessor);
