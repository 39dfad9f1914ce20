import type { AudioFormat } from "./audio/audio-format.ts";

/**
 * A listener on the conversation's per-frame path (the recording, durable-objects/recording/): it is told what the
 * caller sent, what the agent sent the caller, and what of that the caller heard. Called on the audio path, so an
 * implementation copies into preallocated memory and returns: it never awaits, writes storage or logs.
 */
export interface AudioTap {
  /** A caller frame as the leg received it. */
  caller(base64: string, format: AudioFormat): void;
  /**
   * A chunk of agent audio as the leg was sent it. `mark` names the mark sent after it (a leg that echoes marks):
   * the chunk counts as heard once that mark comes back. Without one (a browser) it counts as heard from now on.
   */
  agent(base64: string, format: AudioFormat, itemId: string, mark: string | null): void;
  /** The leg echoed a mark: the agent audio before it has played. */
  heard(mark: string): void;
  /** Barge-in: what was sent and not heard never will be; a leg without marks says how much of `itemId` was heard. */
  cut(cut: { itemId: string; heardMs: number } | null): void;
}
