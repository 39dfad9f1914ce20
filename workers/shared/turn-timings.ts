import type { ProviderName } from "./settings.ts";

/**
 * One agent turn as the caller lived it: when the caller stopped speaking, when the provider's first audio of the
 * reply reached the call's object, when its first frame was handed to the caller's leg, and when the carrier echoed
 * the first mark after it (the caller heard it). Epoch ms; null where the point never happened (a greeting has no
 * caller speech, a reply cut off before its first mark was never heard, a browser echoes no marks).
 */
export interface TurnRecord {
  provider: ProviderName;
  /** The provider's id of the reply (unique within its provider session). */
  itemId: string;
  callerStoppedAt: number | null;
  providerFirstAudioAt: number;
  firstFrameSentAt: number | null;
  firstMarkHeardAt: number | null;
  /** The caller cut the reply off (barge-in, or a switch's cut-over) while it was playing. */
  interrupted: boolean;
}

/**
 * The turn's waterfall: caller's stop → provider's first audio (providerMs), → first frame to the leg (platformMs),
 * → first mark echoed (carrierMs); earMs spans all three. A stage is null when either of its ends is.
 */
export interface TurnStages {
  providerMs: number | null;
  platformMs: number | null;
  carrierMs: number | null;
  earMs: number | null;
}

const span = (from: number | null, to: number | null) => (from === null || to === null ? null : to - from);

export const stagesOf = (turn: TurnRecord): TurnStages => ({
  providerMs: span(turn.callerStoppedAt, turn.providerFirstAudioAt),
  platformMs: span(turn.providerFirstAudioAt, turn.firstFrameSentAt),
  carrierMs: span(turn.firstFrameSentAt, turn.firstMarkHeardAt),
  earMs: span(turn.callerStoppedAt, turn.firstMarkHeardAt),
});
