import type { Logger } from "../../workers/shared/logger.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import type { PartTables } from "../session-tables.ts";

/**
 * One circuit breaker per provider inside the call's object (closed → open → half-open → closed), with its
 * counters in the object's SQLite storage so a restart (eviction, deploy) does not reset them. Defaults are the
 * audited system's: open after 5 consecutive failures, stay open 60 s, allow 3 trials half-open, close after 2
 * successes; a failure while half-open opens it again. Each change of state is logged (`breaker.opened`,
 * `breaker.half_open`, `breaker.closed`) on the session's logger.
 */
export interface BreakerPolicy {
  failureThreshold: number;
  openMs: number;
  halfOpenTrials: number;
  successThreshold: number;
}

export const DEFAULT_BREAKER_POLICY: BreakerPolicy = { failureThreshold: 5, openMs: 60_000, halfOpenTrials: 3, successThreshold: 2 };

export type BreakerStateName = "closed" | "open" | "half_open";

export interface BreakerState {
  state: BreakerStateName;
  consecutiveFailures: number;
  openedAt: number | null;
  trialsStarted: number;
  trialSuccesses: number;
}

const CLOSED: BreakerState = { state: "closed", consecutiveFailures: 0, openedAt: null, trialsStarted: 0, trialSuccesses: 0 };

export const BREAKER_TABLES: PartTables = {
  names: ["provider_breakers"],
  ddl: "CREATE TABLE IF NOT EXISTS provider_breakers (provider TEXT PRIMARY KEY, body TEXT NOT NULL)",
};

export class CircuitBreakers {
  private readonly states = new Map<ProviderName, BreakerState>();

  constructor(
    private readonly sql: SqlStorage,
    private readonly policy: BreakerPolicy,
    private readonly log: () => Logger,
    /** The object has stored nothing yet (session-tables.ts): every breaker starts closed. */
    empty = false,
  ) {
    if (empty) return;
    for (const row of sql.exec<{ provider: ProviderName; body: string }>("SELECT provider, body FROM provider_breakers")) {
      this.states.set(row.provider, JSON.parse(row.body) as BreakerState);
    }
  }

  /** The state as of `now`: an open breaker whose time is up reads as half-open. */
  state(provider: ProviderName, now = Date.now()): BreakerState {
    const state = this.states.get(provider) ?? CLOSED;
    if (state.state === "open" && state.openedAt !== null && now - state.openedAt >= this.policy.openMs) {
      return { ...state, state: "half_open", trialsStarted: 0, trialSuccesses: 0 };
    }
    return state;
  }

  /** When an open breaker lets the next trial through (null when it is not open). */
  reopensAt(provider: ProviderName): number | null {
    const state = this.states.get(provider);
    return state?.state === "open" && state.openedAt !== null ? state.openedAt + this.policy.openMs : null;
  }

  /** Asks to try the provider now; a half-open breaker counts the trial. */
  tryAcquire(provider: ProviderName, now = Date.now()): boolean {
    const state = this.state(provider, now);
    if (state.state === "closed") return true;
    if (state.state === "open" || state.trialsStarted >= this.policy.halfOpenTrials) return false;
    this.save(provider, state.state, { ...state, trialsStarted: state.trialsStarted + 1 });
    return true;
  }

  success(provider: ProviderName, now = Date.now()): BreakerStateName {
    const state = this.state(provider, now);
    if (state.state === "half_open") {
      const successes = state.trialSuccesses + 1;
      if (successes >= this.policy.successThreshold) return this.save(provider, state.state, CLOSED).state;
      return this.save(provider, state.state, { ...state, trialSuccesses: successes }).state;
    }
    if (state.consecutiveFailures > 0) this.save(provider, state.state, { ...state, consecutiveFailures: 0 });
    return state.state;
  }

  failure(provider: ProviderName, now = Date.now()): BreakerStateName {
    const state = this.state(provider, now);
    const failures = state.consecutiveFailures + 1;
    if (state.state === "half_open" || failures >= this.policy.failureThreshold) {
      const opened: BreakerState = { state: "open", consecutiveFailures: failures, openedAt: now, trialsStarted: 0, trialSuccesses: 0 };
      return this.save(provider, state.state, opened).state;
    }
    return this.save(provider, state.state, { ...state, consecutiveFailures: failures }).state;
  }

  /**
   * Stores `state`, logging the changes since what was stored: `seen` is the state the caller acted on, which an
   * open breaker's time running out turned half-open without a write, so that change is logged when first acted on.
   */
  private save(provider: ProviderName, seen: BreakerStateName, state: BreakerState): BreakerState {
    const stored = this.states.get(provider)?.state ?? "closed";
    if (seen !== stored) this.logChange(provider, seen, state);
    if (state.state !== seen) this.logChange(provider, state.state, state);
    this.states.set(provider, state);
    this.sql.exec(
      "INSERT INTO provider_breakers (provider, body) VALUES (?, ?) ON CONFLICT (provider) DO UPDATE SET body = excluded.body",
      provider,
      JSON.stringify(state),
    );
    return state;
  }

  private logChange(provider: ProviderName, to: BreakerStateName, state: BreakerState): void {
    const log = this.log();
    if (to === "open") {
      log.warn("breaker.opened", { provider, consecutiveFailures: state.consecutiveFailures, openMs: this.policy.openMs });
    } else if (to === "half_open") {
      log.info("breaker.half_open", { provider, trials: this.policy.halfOpenTrials });
    } else {
      log.info("breaker.closed", { provider });
    }
  }
}
