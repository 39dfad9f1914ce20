import { type ProviderName, parseSettings } from "./settings.ts";

/**
 * The vocabulary of fleet-wide provider health: what every call's object reports (HealthReport, through
 * HealthReporter) and what the registry answers (ProviderHealth). Times are epoch milliseconds.
 */

export const HEALTH_REPORT_KINDS = ["connect_success", "connect_failure", "error", "response"] as const;
export type HealthReportKind = (typeof HEALTH_REPORT_KINDS)[number];

/** One outcome seen by a call's object. `latencyMs` matters for `response` (time to the provider's answer). */
export interface HealthReport {
  provider: ProviderName;
  kind: HealthReportKind;
  latencyMs?: number;
  at: number;
}

export const PROVIDER_HEALTH_STATES = ["healthy", "degraded", "unhealthy", "offline", "unknown"] as const;
export type ProviderHealthState = (typeof PROVIDER_HEALTH_STATES)[number];

export interface ProviderHealth {
  provider: ProviderName;
  state: ProviderHealthState;
  /** (connect successes + responses) / samples in the window; null with no samples. */
  successRate: number | null;
  /** mid-session errors / samples in the window; null with no samples. */
  errorRate: number | null;
  /** p95 (nearest rank) of `response` latencies in the window; null without any. */
  p95LatencyMs: number | null;
  /** Connect failures since the last connect success (not limited to the window). */
  consecutiveFailures: number;
  /** Outcomes in the window. */
  samples: number;
  lastSuccessAt: number | null;
  lastFailureAt: number | null;
  /** When an offline provider is next probed (null unless offline). */
  nextProbeAt: number | null;
  /** Offline, and its recovery probe is due: a new session may try it (it reports the outcome). */
  probeDue: boolean;
}

/** Outcomes older than this, or beyond the newest WINDOW_OUTCOMES of a provider, are forgotten. */
export const WINDOW_MS = 5 * 60_000;
export const WINDOW_OUTCOMES = 200;
/** The success rate decides nothing below this many samples. */
export const MIN_SAMPLES = 10;

export interface HealthThresholds {
  latencyWarningMs: number;
  latencyErrorMs: number;
  minSuccessRate: number;
  offlineAfter: number;
  probeSeconds: number;
  minSamples: number;
  windowSeconds: number;
  windowOutcomes: number;
}

/** The thresholds from settings (defaults: the audited system's). */
export function healthThresholds(env: object): HealthThresholds {
  const values = parseSettings(env).values;
  return {
    latencyWarningMs: values.PROVIDER_HEALTH_LATENCY_WARNING_MS,
    latencyErrorMs: values.PROVIDER_HEALTH_LATENCY_ERROR_MS,
    minSuccessRate: values.PROVIDER_HEALTH_MIN_SUCCESS_RATE,
    offlineAfter: values.PROVIDER_HEALTH_OFFLINE_AFTER,
    probeSeconds: values.PROVIDER_HEALTH_PROBE_SECONDS,
    minSamples: MIN_SAMPLES,
    windowSeconds: WINDOW_MS / 1000,
    windowOutcomes: WINDOW_OUTCOMES,
  };
}

/** The name of the one registry object: `env.PROVIDER_HEALTH.idFromName(REGISTRY_NAME)`. */
export const REGISTRY_NAME = "global";
