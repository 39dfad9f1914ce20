import type { AudioFormat } from "./audio/audio-format.ts";

/** The caller's side of a conversation as the voice session sees it: a carrier's media stream or a browser. */
export interface CallerLeg {
  /** What the caller's audio arrives in (a carrier's stream says so in its `start`). */
  readonly inbound: AudioFormat;
  /**
   * What the leg must be sent: for a carrier, the codec the platform asked it to play back (Telnyx's
   * `stream_bidirectional_codec`), which need not be what its stream carries in.
   */
  readonly outbound: AudioFormat;
  /** Carriers echo a mark once the audio sent before it has played; a browser leg does not. */
  readonly echoesMarks: boolean;
  sendAudio(base64: string): void;
  mark(name: string): void;
  clear(): void;
}
