/** Told once for the session: a caller's browser that reloads is not held again. */
const TOLD_KEY = "consent.told";
/** A generous speaking rate for the deadline (speech synthesis says about 15 characters a second), and a margin. */
const MS_PER_CHARACTER = 90;
const MARGIN_MS = 2_000;

/**
 * A recorded web session's consent, said by the caller's browser (`hello.consent`; the platform has no voice of its
 * own to say it with). Until the browser reports it said (`consent_heard` on `/live`) or the time to say it has
 * passed, the caller's microphone reaches neither the agent nor the recording: the agent cannot answer, nor the
 * recording begin, before the caller was told. A browser that never reports (an old console, a client that ignores
 * the message) holds the session for at most the deadline — never longer: a caller is not left unheard.
 */
export class WebConsent {
  /** When the hold ends (the caller joined while a consent was due); null: nothing holds. */
  private holdUntil: number | null = null;
  /** Said already (reported, or its time passed): a browser that reconnects is not held again. */
  private told: boolean;

  constructor(private readonly storage: SyncKvStorage) {
    this.told = storage.get(TOLD_KEY) === true;
  }

  /** The caller's browser joined and was handed `message` to say (null: the session is not recorded). */
  callerJoined(message: string | null, now = Date.now()): void {
    if (message === null || this.told) return;
    this.holdUntil ??= now + MARGIN_MS + MS_PER_CHARACTER * message.length;
  }

  /** The browser said it: the caller is heard from now on, and after a reload too. */
  heard(): void {
    this.holdUntil = null;
    if (this.told) return;
    this.told = true;
    this.storage.put(TOLD_KEY, true);
  }

  /** Whether the caller's audio is held now (on the web caller's per-frame path: a null check once it is told). */
  holds(now?: number): boolean {
    if (this.holdUntil === null) return false;
    if ((now ?? Date.now()) < this.holdUntil) return true;
    // Kept in memory only: a storage write here would be one on the audio path.
    this.holdUntil = null;
    this.told = true;
    return false;
  }
}
