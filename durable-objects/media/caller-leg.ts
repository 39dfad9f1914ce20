import type { AudioFormat } from "./audio/audio-format.ts";

/** The caller's side of a conversation as the voice session sees it: a carrier's media stream or a browser. */
export interface CallerLeg {
  readonly format: AudioFormat;
  /** Carriers echo a mark once the audio sent before it has played; a browser leg does not. */
  readonly echoesMarks: boolean;
  sendAudio(base64: string): void;
  mark(name: string): void;
  clear(): void;
}
