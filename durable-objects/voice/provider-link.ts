import { reasonOf } from "../../workers/shared/errors.ts";
import type { ProviderLinkState } from "../../workers/shared/live-protocol.ts";
import { metrics } from "../../workers/shared/observability/metrics.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import { sleep } from "../../workers/shared/sleep.ts";
import type { CircuitBreakers } from "./circuit-breaker.ts";
import type { ProviderEvent, VoiceProvider } from "./providers/provider.ts";
import type { VoiceSessionHost } from "./voice-session-types.ts";

/** What the link asks of the voice session it connects. */
export interface LinkedSession {
  /** Dials `provider` with the conversation so far, its events tagged with `generation`. */
  dial(provider: ProviderName, onEvent: (event: ProviderEvent) => void): Promise<VoiceProvider>;
  onEvent(generation: number, event: ProviderEvent): void;
  /** Fails over to another provider; false when none takes the session. */
  failover(): Promise<boolean>;
  /** A switch is under way (it will cut over to its own provider). */
  switching(): boolean;
  /** A provider became the session's (a connect or a switch's cut-over): per-provider state starts over. */
  installed(): void;
  /** The provider reconnected: deliver the caller audio held meanwhile. */
  reconnected(): void;
  /** The provider was lost. */
  lost(): void;
}

interface LinkPolicy {
  reconnectBaseMs: number;
  reconnectAttempts: number;
  /** A lost provider not back within this long (by the next attempt's time) is failed over from. */
  failoverAfterMs: number;
}

/**
 * The session's connection to its provider: connect, reconnect with exponential backoff and jitter under a circuit
 * breaker per provider, failover when the provider stays away, and the generation number that tells the current
 * provider session's events from those of any replaced one.
 */
export class ProviderLink {
  name: ProviderName;
  provider: VoiceProvider | null = null;
  state: ProviderLinkState = "connecting";
  /** The current provider session's number: events from any other (replaced, or still being switched to) are not the call's. */
  generation = 0;
  private generationSeq = 0;
  private connecting = false;
  private closed = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    initial: ProviderName,
    private readonly session: LinkedSession,
    private readonly host: VoiceSessionHost,
    private readonly breakers: CircuitBreakers,
    private readonly policy: LinkPolicy,
  ) {
    this.name = initial;
  }

  get connected(): boolean {
    return this.provider !== null && this.state === "connected";
  }

  newGeneration(): number {
    return ++this.generationSeq;
  }

  /** Makes `provider` the one the call talks to (after a connect or a switch's cut-over). */
  use(provider: VoiceProvider, name: ProviderName, generation: number): void {
    this.generation = generation;
    this.provider = provider;
    this.name = name;
    this.session.installed();
    this.breakers.success(name);
  }

  setState(state: ProviderLinkState, detail: string | null): void {
    if (this.state === state && state !== "reconnecting") return;
    this.state = state;
    this.host.publish({ type: "provider", provider: this.name, state, detail, at: Date.now() });
  }

  /** The provider dropped, erred fatally or stalled: counted against its breaker, then reconnected (or failed over). */
  lose(why: string): void {
    if (this.closed) return;
    this.breakers.failure(this.name);
    this.host.reportHealth({ provider: this.name, kind: "error", at: Date.now() });
    metrics.count("ai_provider_errors_total", { provider: this.name, error_type: "connection_lost" });
    this.host.log().warn("provider.lost", { provider: this.name, why });
    this.generation = this.newGeneration();
    this.provider?.close();
    this.provider = null;
    this.session.lost();
    // A switch under way cuts over to its new provider; if it fails, it reconnects this one.
    if (this.session.switching()) this.setState("reconnecting", why);
    else void this.connect(true);
  }

  /** A switch that failed found the old provider gone meanwhile: reconnect it. */
  reconnectIfLost(): void {
    if (!this.closed && !this.provider) void this.connect(true);
  }

  close(): void {
    this.closed = true;
    this.state = "closed";
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.generation = this.newGeneration();
    this.provider?.close();
    this.provider = null;
  }

  /**
   * Connects now, then with exponential backoff and jitter. The caller is not left in silence for long: once the
   * next attempt would come later than `failoverAfterMs` after the provider was lost, the session fails over to the
   * next healthy provider (and goes on retrying its own if none takes it); likewise when the breaker opens or the
   * attempts run out. When no provider takes the call, it waits for its breaker to let a trial through.
   *
   * Logged: every failed dial (`provider.connect_failed`), every retry (`provider.reconnect_attempt`), and how it
   * ends: `provider.connected` (a first connection at once), `provider.reconnected` (after a loss or a failed dial),
   * or `provider.reconnect_failed` (given up; a failover or the breaker's next trial takes it from there).
   */
  async connect(afterLoss = false): Promise<void> {
    if (this.connecting || this.closed) return;
    this.connecting = true;
    const name = this.name;
    const lostAt = Date.now();
    const stillWanted = () => !this.closed && this.name === name && !this.provider;
    const log = this.host.log();
    try {
      const { reconnectBaseMs, reconnectAttempts, failoverAfterMs } = this.policy;
      let failoverTried = false;
      let attempt = 0;
      for (; attempt <= reconnectAttempts && stillWanted(); attempt++) {
        if (attempt > 0) {
          const delay = reconnectBaseMs * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4);
          if (!failoverTried && Date.now() + delay - lostAt > failoverAfterMs) {
            failoverTried = true;
            if (await this.session.failover()) return;
            if (!stillWanted()) return;
          }
          log.info("provider.reconnect_attempt", { provider: name, attempt, of: reconnectAttempts, delayMs: Math.round(delay) });
          this.setState("reconnecting", `attempt ${attempt} of ${reconnectAttempts}`);
          await sleep(delay);
          if (!stillWanted()) return;
        }
        const outcome = this.breakers.tryAcquire(name) ? await this.connectOnce(name, attempt) : "failed";
        if (outcome === "connected") {
          if (afterLoss || attempt > 0)
            log.info("provider.reconnected", { provider: name, attempts: attempt + 1, downMs: Date.now() - lostAt });
          else log.info("provider.connected", { provider: name });
        }
        if (outcome !== "failed") return;
        if (this.breakers.state(name).state === "open") break;
      }
      if (!stillWanted()) return;
      const why = this.breakers.state(name).state === "open" ? "breaker_open" : "attempts_exhausted";
      log.error("provider.reconnect_failed", { provider: name, attempts: Math.min(attempt + 1, reconnectAttempts + 1), why });
      if (await this.session.failover()) return;
      if (!stillWanted()) return;
      this.setState("failed", "reconnection attempts exhausted and no other provider available");
      // The breaker lets a trial through once its open period ends: try again then.
      const reopensAt = this.breakers.reopensAt(name);
      const retryIn = Math.max(0, (reopensAt ?? Date.now() + reconnectBaseMs * 2 ** reconnectAttempts) - Date.now());
      this.retryTimer = setTimeout(() => void this.connect(true), retryIn);
    } finally {
      this.connecting = false;
    }
  }

  private async connectOnce(name: ProviderName, attempt: number): Promise<"connected" | "superseded" | "failed"> {
    const generation = this.newGeneration();
    this.generation = generation;
    if (this.state !== "reconnecting") this.setState("connecting", null);
    try {
      const provider = await this.session.dial(name, (event) => this.session.onEvent(generation, event));
      if (this.closed || generation !== this.generation || this.name !== name) {
        provider.close();
        return "superseded"; // a switch cut over meanwhile: nothing left to retry
      }
      this.host.reportHealth({ provider: name, kind: "connect_success", at: Date.now() });
      this.use(provider, name, generation);
      this.setState("connected", null);
      this.session.reconnected();
      return "connected";
    } catch (error) {
      this.breakers.failure(name);
      this.host.reportHealth({ provider: name, kind: "connect_failure", at: Date.now() });
      this.host.log().warn("provider.connect_failed", { provider: name, attempt, error: reasonOf(error) });
      return "failed";
    }
  }
}
