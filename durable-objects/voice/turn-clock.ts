import type { ProviderName } from "../../workers/shared/settings.ts";
import type { TurnRecord } from "../../workers/shared/turn-timings.ts";

/**
 * Latency at the caller's ear, per agent turn: the instants of the reply now playing, kept in numbers set in place
 * (0 = not yet) and set only at the first chunk, first frame and first mark of a reply, so the per-frame cost is a
 * comparison. A turn starts at the provider's first audio of a reply and is complete once the reply is over: the
 * next reply starts, the caller cuts it off, the provider or the leg is lost, or the session closes. Only then is its
 * record allocated and handed on (once per turn), with `interrupted` final.
 *
 * Whose speech end a reply answers: the caller's latest since the previous reply started — the object's own (the
 * first silent frame after speech) when it saw one, else the provider's speech-stopped event. None (a greeting, a
 * reply to a tool result with no caller speech since) leaves it null.
 */
export class TurnClock {
  private itemId: string | null = null;
  private provider: ProviderName | null = null;
  private startedAt = 0;
  private callerStoppedAt = 0;
  private firstFrameSentAt = 0;
  private firstMarkHeardAt = 0;
  /** The provider's latest speech-stopped event (epoch ms, 0 = never). */
  private heardStopAt = 0;

  constructor(private readonly completed: (turn: TurnRecord) => void) {}

  /** When the provider last said the caller finished speaking (epoch ms, 0 = never). */
  get providerHeardStopAt(): number {
    return this.heardStopAt;
  }

  /** The provider says the caller finished speaking. */
  callerStopped(): void {
    this.heardStopAt = Date.now();
  }

  /** A chunk of `itemId` is on its way to the caller: the first of a new reply starts its turn. */
  agentAudio(itemId: string, provider: ProviderName, callerSpeechEndedAt: number): void {
    if (itemId === this.itemId) return;
    this.end(false);
    const since = this.startedAt;
    this.itemId = itemId;
    this.provider = provider;
    this.startedAt = Date.now();
    this.callerStoppedAt = callerSpeechEndedAt > since ? callerSpeechEndedAt : this.heardStopAt > since ? this.heardStopAt : 0;
    this.firstFrameSentAt = 0;
    this.firstMarkHeardAt = 0;
  }

  /** A frame of the reply was handed to the caller's leg. */
  frameSent(): void {
    if (this.firstFrameSentAt === 0 && this.itemId !== null) this.firstFrameSentAt = Date.now();
  }

  /** The carrier echoed a mark of the reply: the caller heard its start. */
  markHeard(): void {
    if (this.firstMarkHeardAt === 0 && this.firstFrameSentAt !== 0 && this.itemId !== null) this.firstMarkHeardAt = Date.now();
  }

  /** The reply is over (cut off by the caller when `interrupted`): its record goes to `completed`. */
  end(interrupted: boolean): void {
    const itemId = this.itemId;
    if (itemId === null || this.provider === null) return;
    this.itemId = null;
    this.completed({
      provider: this.provider,
      itemId,
      callerStoppedAt: this.callerStoppedAt || null,
      providerFirstAudioAt: this.startedAt,
      firstFrameSentAt: this.firstFrameSentAt || null,
      firstMarkHeardAt: this.firstMarkHeardAt || null,
      interrupted,
    });
  }
}
