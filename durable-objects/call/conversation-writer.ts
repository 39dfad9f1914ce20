import type { StatementRunner } from "../../workers/shared/db/shared-batch.ts";
import { yieldToSockets } from "../../workers/shared/yield-to-sockets.ts";
import type { ResumptionHandle } from "../voice/voice-session-types.ts";
import { DrainRetry } from "./outbox-backlog.ts";
import type { TranscriptLog } from "./transcript-log.ts";

/** Transcript lines are written (storage, then D1) in batches this long after they were said, off the audio path. */
const FLUSH_DELAY_MS = 1_000;
/** A batch waits while agent audio is being relayed (a chunk within this long), so its commit holds no agent audio… */
const AGENT_AUDIO_QUIET_MS = 250;
/** …but not forever: after this many waits it is written anyway (a provider streaming without pause for seconds). */
const MAX_FLUSH_DEFERRALS = 20;
/**
 * While the session is live its transcript reaches D1 at most this often (storage still gets it within about a
 * second): every D1 batch costs a transaction on the one database all calls share (at a thousand live calls, a
 * hundred a second), so a call that talks for a minute sends six rather than a batch per line. Its end drains
 * everything at once; supervisors follow a live call on `/live`, not through D1.
 */
const D1_INTERVAL_MS = 10_000;
const RESUMPTION_KEY = "resumption_handle";

interface WriterParts {
  env: Env;
  /** What sends the transcript's batches to D1 (the object's shared batch). */
  d1Writes: StatementRunner;
  storage: SyncKvStorage;
  transcript: TranscriptLog;
  /** Whether agent audio was relayed within the last `withinMs` (a commit now would hold it). */
  relayingAgentAudio(withinMs: number): boolean;
  /** The session the lines belong to; null before it is known. */
  session(): { tenantId: string; sessionId: string } | null;
  /** Asks the alarm to run a flush again this much later (D1 failed, or the drain stopped at its bound). */
  wakeIn(delayMs: number): Promise<void>;
}

/**
 * What the conversation changes — transcript lines, the provider's resumption handle — written behind: in one
 * commit about a second later, at a moment when no agent audio is being relayed (a storage write holds every
 * outgoing message of the object until it is durable, so this one holds at most caller frames on their way to the
 * provider), and to D1 at most every D1_INTERVAL_MS while the session is live.
 */
export class ConversationWriter {
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** The provider's latest resumption handle (Gemini sends one every turn): `null` forgets it, undefined = unchanged. */
  private unsavedHandle: ResumptionHandle | null | undefined = undefined;
  private d1DueAt = 0;
  private readonly retry = new DrainRetry();

  constructor(private readonly parts: WriterParts) {}

  /** The voice session's store for its resumption handle: in memory until the next write. */
  readonly resumption = {
    get: (): ResumptionHandle | undefined =>
      this.unsavedHandle === undefined ? this.parts.storage.get<ResumptionHandle>(RESUMPTION_KEY) : (this.unsavedHandle ?? undefined),
    set: (handle: ResumptionHandle | null): void => {
      this.unsavedHandle = handle;
      this.changed();
    },
  };

  /** Something was said or changed: written in the next quiet moment. */
  changed(delayMs = FLUSH_DELAY_MS, deferrals = 0): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (deferrals < MAX_FLUSH_DEFERRALS && this.parts.relayingAgentAudio(AGENT_AUDIO_QUIET_MS)) {
        this.changed(AGENT_AUDIO_QUIET_MS, deferrals + 1);
      } else {
        this.writeBehind();
      }
    }, delayMs);
  }

  /** Everything to storage and D1 now (the session's end, the alarm's retry, the write-behind's interval). */
  async flush(): Promise<void> {
    this.save();
    const session = this.parts.session();
    if (!session || !this.parts.transcript.hasWork()) return;
    this.d1DueAt = Date.now() + D1_INTERVAL_MS;
    // D1 is unavailable or the backlog is long: the alarm goes on; the lines wait in the object's storage.
    const delay = this.retry.after(
      await this.parts.transcript.flush(this.parts.env, session.tenantId, session.sessionId, this.parts.d1Writes),
    );
    if (delay !== null) await this.parts.wakeIn(delay);
  }

  /** Storage now, in this quiet moment; D1 too if its interval has passed, else a flush is due when it has. */
  private writeBehind(): void {
    const now = Date.now();
    this.save();
    if (now >= this.d1DueAt) {
      // The lines commit to storage in this turn, and D1's batch goes a turn later (its flush finds nothing left to
      // save): not one chain on the thread the other calls' frames wait for (yield-to-sockets.ts).
      void yieldToSockets().then(() => this.flush());
      return;
    }
    // Ticks on at the storage pace, so lines said meanwhile still reach storage within about a second.
    if (this.parts.transcript.hasWork()) this.changed(Math.min(FLUSH_DELAY_MS, this.d1DueAt - now));
  }

  /** Storage now, in the caller's commit (the call's end: with its last transition, not in a commit of its own). */
  save(): void {
    if (this.unsavedHandle !== undefined) {
      if (this.unsavedHandle === null) this.parts.storage.delete(RESUMPTION_KEY);
      else this.parts.storage.put(RESUMPTION_KEY, this.unsavedHandle);
      this.unsavedHandle = undefined;
    }
    this.parts.transcript.save();
  }
}
