import { reasonOf } from "../../workers/shared/errors.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import { sleep } from "../../workers/shared/sleep.ts";
import type { CircuitBreakers } from "./circuit-breaker.ts";
import type { ConversationItem, ProviderEvent, VoiceProvider } from "./providers/provider.ts";
import type { SwitchOptions, SwitchResult, VoiceSessionHost } from "./voice-session-types.ts";

/** A switch waits this long at most for a pause between agent turns, then cuts over interrupting the agent. */
const SAFE_POINT_MAX_WAIT_MS = 5_000;
const SAFE_POINT_POLL_MS = 20;
/** Caller audio held for the new provider while a switch is made (the old one hears it live meanwhile). */
const MAX_SWAP_FRAMES = 500;

/** What the switcher asks of the voice session it switches. */
export interface SwitchedSession {
  readonly closed: boolean;
  readonly providerName: ProviderName;
  /** A new provider session's number; events of any other number are not the call's. */
  newGeneration(): number;
  history(): ConversationItem[];
  resumptionHandleFor(provider: ProviderName): string | undefined;
  /** Dials `provider` for this session, its events tagged with `generation`. */
  connect(provider: ProviderName, generation: number, history: ConversationItem[], handle: string | undefined): Promise<VoiceProvider>;
  /** The agent is talking, or a tool is running: not a pause to cut over at. */
  busy(): boolean;
  /** Makes `next` the session's provider: the agent is interrupted, the old provider closed, held audio delivered. */
  cutOver(next: VoiceProvider, to: ProviderName, generation: number, detail: string, heldAudio: string[]): void;
  /** The old provider dropped while a switch was being made that then failed: reconnect it. */
  reconnectIfLost(): void;
}

interface Switching {
  to: ProviderName;
  generation: number;
  startedAt: number;
  heldAudio: string[];
  failure: string | null;
}

/**
 * Moves a session to another provider (or a fresh session of the same one) without the caller losing the thread:
 * manual switches, failover to the next healthy provider, rollovers before a provider's session cap, and the fleet
 * registry's verdict checked after agent turns.
 */
export class Switcher {
  private switching: Switching | null = null;
  lastSwitch: SwitchResult | null = null;
  private lastFleetCheckAt = 0;

  constructor(
    private readonly session: SwitchedSession,
    private readonly host: VoiceSessionHost,
    private readonly breakers: CircuitBreakers,
    private readonly policy: { order: ProviderName[]; fleetCheckIntervalMs: number },
  ) {}

  /** The switch under way, if any. */
  get inProgress(): { toProvider: ProviderName; startedAt: number } | null {
    return this.switching ? { toProvider: this.switching.to, startedAt: this.switching.startedAt } : null;
  }

  get active(): boolean {
    return this.switching !== null;
  }

  /** A caller frame during a switch is also held for the new provider (bounded); true when one had to be dropped. */
  hold(base64: string): boolean {
    const switching = this.switching;
    if (!switching || switching.heldAudio.push(base64) <= MAX_SWAP_FRAMES) return false;
    switching.heldAudio.shift();
    return true;
  }

  /** An event of the provider being switched to; true when it was one (it stays silent until the cut-over). */
  eventOfNext(generation: number, event: ProviderEvent): boolean {
    const switching = this.switching;
    if (!switching || generation !== switching.generation) return false;
    // If the provider being switched to fails before the cut-over, the switch does.
    if (event.type === "closed" || (event.type === "error" && event.fatal)) {
      switching.failure = `${switching.to} ${event.type === "closed" ? `closed (${event.code})` : `error ${event.code}`} before the cut-over`;
    }
    return true;
  }

  /**
   * Make before break: at the next pause between agent turns (or at once, interrupting the agent, when asked) the
   * new provider is connected and configured (instructions, tools, audio formats, the conversation so far) while the
   * old one keeps serving, then cut over to; the caller's audio from the swap is delivered to the new provider. A switch that fails leaves the session on its provider, working.
   */
  async switchTo(to: ProviderName, options: SwitchOptions): Promise<SwitchResult> {
    const session = this.session;
    const from = session.providerName;
    const startedAt = Date.now();
    if (this.switching) {
      return {
        success: false,
        fromProvider: from,
        toProvider: to,
        contextPreserved: 0,
        switchedAt: null,
        durationMs: 0,
        error: "switch_in_progress",
      };
    }
    const refusal = session.closed
      ? "the session has ended"
      : to === from && options.reason === "manual"
        ? `the session is already on ${to}`
        : !this.host.configured(to)
          ? `${to} is not configured`
          : !this.breakers.tryAcquire(to)
            ? `${to}'s circuit breaker is open`
            : null;
    if (refusal) return this.finish({ from, to, startedAt, options, carried: 0, error: refusal });

    const generation = session.newGeneration();
    const switching: Switching = { to, generation, startedAt, heldAudio: [], failure: null };
    this.switching = switching;
    // The pause comes before the conversation is read: a reply still under way when the switch was asked for would
    // otherwise be missing from the new provider's context, and the new provider would answer the caller again.
    if (!options.immediate) await this.untilSafePoint();
    if (session.closed || switching.failure) {
      return this.abandon({ from, to, startedAt, options, carried: 0, error: switching.failure ?? "the session has ended" });
    }
    // The old provider heard everything until now and it is in the history; only what follows is held for the new one.
    switching.heldAudio.length = 0;
    const history = options.preserveContext ? session.history() : [];
    this.host.log().info("switch.started", {
      provider: to,
      from,
      to,
      reason: options.reason,
      immediate: options.immediate,
      preserveContext: options.preserveContext,
      messages: history.length,
    });
    // A fresh session of the same provider resumes where this one is; another provider starts from the history.
    const handle = to === from ? session.resumptionHandleFor(to) : undefined;
    this.host.publish({
      type: "provider",
      provider: to,
      state: "connecting",
      detail: `switching from ${from} (${options.reason})`,
      at: startedAt,
    });
    let next: VoiceProvider;
    try {
      next = await session.connect(to, generation, history, handle);
    } catch (error) {
      this.breakers.failure(to);
      this.host.reportHealth({ provider: to, kind: "connect_failure", at: Date.now() });
      this.host.log().warn("provider.connect_failed", { provider: to, attempt: 0, error: reasonOf(error), switching: true });
      return this.abandon({
        from,
        to,
        startedAt,
        options,
        carried: history.length,
        error: `could not connect to ${to}: ${reasonOf(error)}`,
      });
    }
    this.host.reportHealth({ provider: to, kind: "connect_success", at: Date.now() });
    this.host.log().info("provider.connected", { provider: to, switching: true });
    if (session.closed || switching.failure) {
      next.close();
      if (switching.failure) this.breakers.failure(to);
      return this.abandon({ from, to, startedAt, options, carried: history.length, error: switching.failure ?? "the session has ended" });
    }
    this.switching = null;
    session.cutOver(next, to, generation, `switched from ${from} (${options.reason})`, switching.heldAudio);
    return this.finish({ from, to, startedAt, options, carried: history.length, error: null });
  }

  /** Fails over to the next usable provider in PROVIDER_ORDER, with the conversation; false when none takes it. */
  async failover(): Promise<boolean> {
    const current = this.session.providerName;
    if (this.session.closed || this.switching) return false;
    const order = this.policy.order;
    const start = order.indexOf(current);
    const candidates = [...order.slice(start + 1), ...order.slice(0, Math.max(0, start))].filter(
      (name) => name !== current && this.host.configured(name) && this.breakers.state(name).state !== "open",
    );
    for (const candidate of candidates) {
      if (["offline", "unhealthy"].includes(await this.host.fleetState(candidate))) continue;
      // A call that ended meanwhile has nothing to fail over: each further candidate would be a failed switch logged.
      if (this.session.closed) return false;
      const result = await this.switchTo(candidate, { preserveContext: true, reason: "auto_failover", immediate: true });
      if (result.success) return true;
      if (result.error === "switch_in_progress") return false;
    }
    return false;
  }

  /** The fleet registry marked the current provider down: fail over (checked after agent turns, now and then). */
  async checkFleetHealth(): Promise<void> {
    const now = Date.now();
    if (now - this.lastFleetCheckAt < this.policy.fleetCheckIntervalMs || this.switching) return;
    this.lastFleetCheckAt = now;
    const provider = this.session.providerName;
    const state = await this.host.fleetState(provider);
    if (state === "offline" || state === "unhealthy") {
      this.host.log().warn("provider.marked_unhealthy", { provider, state });
      await this.failover();
    }
  }

  private async untilSafePoint(): Promise<void> {
    const deadline = Date.now() + SAFE_POINT_MAX_WAIT_MS;
    while (!this.session.closed && Date.now() < deadline && !this.switching?.failure && this.session.busy()) {
      await sleep(SAFE_POINT_POLL_MS);
    }
  }

  /** A switch that started and failed: the session stays on (or reconnects) its provider. */
  private abandon(attempt: SwitchAttempt): SwitchResult {
    this.switching = null;
    this.session.reconnectIfLost();
    return this.finish(attempt, true);
  }

  /** Records and reports a switch's end: completed, rolled back (it had started), or refused before it started. */
  private finish(attempt: SwitchAttempt, started = false): SwitchResult {
    const durationMs = Date.now() - attempt.startedAt;
    const success = attempt.error === null;
    const result: SwitchResult = {
      success,
      fromProvider: attempt.from,
      toProvider: attempt.to,
      contextPreserved: attempt.carried,
      switchedAt: success ? new Date().toISOString() : null,
      durationMs,
      error: attempt.error,
    };
    this.lastSwitch = result;
    const { reason } = attempt.options;
    this.host.switchRecorded({
      id: crypto.randomUUID(),
      fromProvider: attempt.from,
      toProvider: attempt.to,
      reason,
      outcome: success ? "succeeded" : "failed",
      error: attempt.error,
      messagesCarried: attempt.carried,
      startedAt: attempt.startedAt,
      durationMs,
    });
    this.host.publish({
      type: "provider_switched",
      from: attempt.from,
      to: attempt.to,
      reason,
      success,
      error: attempt.error,
      at: Date.now(),
    });
    // A switch's lines name the provider it moves to (`from` says where from).
    const fields = { provider: attempt.to, from: attempt.from, to: attempt.to, reason, durationMs, contextPreserved: attempt.carried };
    if (success) this.host.log().info("switch.completed", fields);
    else this.host.log().warn(started ? "switch.rolled_back" : "switch.refused", { ...fields, error: attempt.error });
    return result;
  }
}

interface SwitchAttempt {
  from: ProviderName;
  to: ProviderName;
  startedAt: number;
  options: SwitchOptions;
  carried: number;
  error: string | null;
}
