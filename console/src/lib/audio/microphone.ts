import captureWorklet from "./capture-worklet.ts?worker&url";

/** The rate both ways on `/live`: PCM16 little-endian, 16 kHz, mono. */
export const LIVE_AUDIO_RATE = 16_000;

export interface Microphone {
  /** While muted, frames of silence go out instead (the provider's turn detection keeps its clock). */
  muted: boolean;
  /** True when the browser has not let audio start yet (a page loaded without a user gesture, e.g. a reload). */
  readonly suspended: boolean;
  /** Starts capture the browser held back; call it from a user gesture. */
  resume(): Promise<void>;
  stop(): void;
}

/**
 * The microphone as 20 ms PCM16 16 kHz frames through an AudioWorklet (capture-worklet.ts), with the input level
 * (RMS, 0…1) of each frame for a meter. Asks for the microphone; throws the browser's error if refused.
 */
export async function openMicrophone(onFrame: (frame: ArrayBuffer) => void, onLevel: (level: number) => void): Promise<Microphone> {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  const context = new AudioContext({ sampleRate: LIVE_AUDIO_RATE, latencyHint: "interactive" });
  try {
    await context.audioWorklet.addModule(captureWorklet);
  } catch (error) {
    for (const track of stream.getTracks()) track.stop();
    await context.close();
    throw error;
  }
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "switchboard-capture", { numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1 });
  const microphone: Microphone = {
    muted: false,
    get suspended() {
      return context.state === "suspended";
    },
    resume: () => context.resume(),
    stop() {
      node.port.onmessage = null;
      source.disconnect();
      for (const track of stream.getTracks()) track.stop();
      void context.close();
    },
  };
  node.port.onmessage = (message: MessageEvent<{ frame: ArrayBuffer; level: number }>) => {
    const { frame, level } = message.data;
    onLevel(microphone.muted ? 0 : level);
    onFrame(microphone.muted ? new ArrayBuffer(frame.byteLength) : frame);
  };
  source.connect(node);
  return microphone;
}
