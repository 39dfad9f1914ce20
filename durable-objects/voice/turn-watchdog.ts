/** end_call: the line closes when the goodbye has played, or after this long whatever happens. */
const END_CALL_MAX_WAIT_MS = 10_000;
const END_CALL_QUIET_MS = 1_500;
const CHECK_INTERVAL_MS = 250;

interface WatchdogHooks {
  /** A reply was owed and none came within the response timeout. */
  stalled(): void;
  /** end_call's goodbye has played (or the wait ran out): close the line. */
  hangup(reason: string): void;
  /** Agent audio is still playing to the caller. */
  agentSpeaking(): boolean;
  /** When agent audio was last relayed (epoch ms). */
  lastAgentAudioAt(): number;
}

/**
 * What is due in a conversation without a frame to trigger it: a provider that owes a reply and has not answered
 * within the response timeout, and a pending end_call waiting for the goodbye to play. One timer, armed only while
 * something is due, so an idle call holds none.
 */
export class TurnWatchdog {
  private awaitingReplySince: number | null = null;
  private endCallAt: { requestedAt: number; reason: string } | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(
    private readonly responseTimeoutMs: number,
    private readonly hooks: WatchdogHooks,
  ) {}

  /** Since when a reply is owed (the caller finished a turn, text or a tool result was sent), or null. */
  get awaitingSince(): number | null {
    return this.awaitingReplySince;
  }

  awaitReply(): void {
    if (this.awaitingReplySince !== null) return;
    this.awaitingReplySince = Date.now();
    this.arm();
  }

  /** The agent answered (audio, a transcript line, a tool call): nothing is owed any more. */
  replied(): void {
    if (this.awaitingReplySince === null) return;
    this.awaitingReplySince = null;
    this.arm();
  }

  endCall(reason: string): void {
    this.endCallAt ??= { requestedAt: Date.now(), reason };
    this.arm();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.closed) return;
    const due = Math.min(
      this.endCallAt ? Date.now() + CHECK_INTERVAL_MS : Infinity,
      this.awaitingReplySince !== null ? this.awaitingReplySince + this.responseTimeoutMs + 1 : Infinity,
    );
    if (due !== Infinity) this.timer = setTimeout(() => this.check(), Math.max(0, due - Date.now()));
  }

  private check(): void {
    this.timer = null;
    const now = Date.now();
    const endCall = this.endCallAt;
    if (endCall) {
      const drained = !this.hooks.agentSpeaking();
      const quiet = now - Math.max(this.hooks.lastAgentAudioAt(), endCall.requestedAt) >= END_CALL_QUIET_MS;
      if ((drained && quiet) || now - endCall.requestedAt >= END_CALL_MAX_WAIT_MS) {
        this.endCallAt = null;
        this.hooks.hangup(endCall.reason);
      }
    }
    const waiting = this.awaitingReplySince;
    if (waiting !== null && now - waiting > this.responseTimeoutMs) {
      this.awaitingReplySince = null;
      this.hooks.stalled();
    }
    this.arm();
  }
}
