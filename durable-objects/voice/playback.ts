/**
 * What the caller has actually heard of the agent's current reply. Every chunk sent to the caller's leg is followed
 * by a mark named `<item>@<ms sent so far>`; a carrier echoes a mark once the audio before it has played, so the
 * largest echoed mark is what was heard. A leg that echoes no marks (a browser) is assumed to play in real time from
 * its first chunk. An interrupted reply is remembered (bounded), so its late audio and late marks are ignored.
 */
const MAX_INTERRUPTED_REMEMBERED = 64;

interface Playing {
  itemId: string;
  sentMs: number;
  heardMs: number;
  firstSentAt: number;
  /** Whether the item was already interrupted when it started playing: looked up once per reply, not per chunk. */
  interrupted: boolean;
}

export class Playback {
  private playing: Playing | null = null;
  private readonly interrupted = new Set<string>();

  constructor(private readonly echoesMarks: () => boolean) {}

  isInterrupted(itemId: string): boolean {
    // Per chunk, mostly of the reply playing now: comparing its id costs less than hashing a fresh string into the set.
    const playing = this.playing;
    if (playing?.itemId === itemId) return playing.interrupted;
    return this.interrupted.has(itemId);
  }

  /** A chunk of `ms` of `itemId` went to the caller; returns the mark to send after it. */
  sent(itemId: string, ms: number, now = Date.now()): string {
    let playing = this.playing;
    if (playing?.itemId !== itemId) {
      playing = this.playing = { itemId, sentMs: 0, heardMs: 0, firstSentAt: now, interrupted: this.interrupted.has(itemId) };
    }
    playing.sentMs += ms;
    return `${itemId}@${Math.round(playing.sentMs)}`;
  }

  /**
   * A mark came back: the audio before it has played. Marks of other or interrupted items are ignored; true when
   * the mark was the playing reply's.
   */
  markPlayed(name: string): boolean {
    const at = name.lastIndexOf("@");
    const playing = this.playing;
    if (at <= 0 || !playing) return false;
    const itemId = name.slice(0, at);
    const heardMs = Number(name.slice(at + 1));
    if (itemId !== playing.itemId || !Number.isFinite(heardMs) || playing.interrupted) return false;
    playing.heardMs = Math.max(playing.heardMs, heardMs);
    return true;
  }

  /** Agent audio sent and not yet played: the caller is still hearing the agent. */
  audible(): boolean {
    const playing = this.playing;
    return !!playing && this.heard(playing) < playing.sentMs;
  }

  /** Stops the reply being heard (barge-in): which item, and how much of it the caller heard; null when none was audible. */
  interrupt(): { itemId: string; heardMs: number } | null {
    const playing = this.playing;
    if (!playing || !this.audible()) return null;
    this.playing = null;
    this.interrupted.add(playing.itemId);
    if (this.interrupted.size > MAX_INTERRUPTED_REMEMBERED) this.interrupted.delete(this.interrupted.values().next().value ?? "");
    return { itemId: playing.itemId, heardMs: Math.floor(this.heard(playing)) };
  }

  /** Forgets the reply in progress (a new leg, a lost provider): nothing of it can be heard any more. */
  reset(): void {
    this.playing = null;
  }

  private heard(playing: Playing): number {
    return this.echoesMarks() ? playing.heardMs : Math.min(playing.sentMs, Date.now() - playing.firstSentAt);
  }
}
