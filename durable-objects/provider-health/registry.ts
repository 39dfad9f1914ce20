import { DurableObject } from "cloudflare:workers";
import { reasonOf } from "../../workers/shared/errors.ts";
import { createLogger } from "../../workers/shared/logger.ts";
import { PUSH_INTERVAL_MS, pushMetrics } from "../../workers/shared/observability/metrics.ts";
import { seriesKey } from "../../workers/shared/observability/recorder.ts";
import { providerConfigured } from "../../workers/shared/provider-endpoints.ts";
import {
  HEALTH_REPORT_KINDS,
  type HealthReport,
  type HealthReportKind,
  type HealthThresholds,
  healthThresholds,
  PROVIDER_HEALTH_STATES,
  type ProviderHealth,
  WINDOW_MS,
  WINDOW_OUTCOMES,
} from "../../workers/shared/provider-health.ts";
import { type ProviderName, providerSchema } from "../../workers/shared/settings.ts";
import type { VoiceProvider } from "../voice/providers/provider.ts";
import { connectProvider } from "../voice/providers/registry.ts";

export type { HealthReport, ProviderHealth } from "../../workers/shared/provider-health.ts";

const PROVIDERS = providerSchema.options;
/** A batch larger than this is cut (the reporter sends at most its bounded queue). */
const MAX_BATCH = 1_000;
/** A recovery probe that has not connected and configured by then has failed. */
const PROBE_TIMEOUT_MS = 15_000;

type ProviderRow = {
  provider: ProviderName;
  consecutive_failures: number;
  last_connect_success_at: number | null;
  last_success_at: number | null;
  last_failure_at: number | null;
  next_probe_at: number | null;
  probe_due: number;
};

type OutcomeRow = {
  kind: HealthReportKind;
  latency_ms: number | null;
};

/** The correlation id a recovery probe sends (X-Correlation-ID), so a provider-side trace names it. */
export function probeCorrelationId(registryId: string, provider: ProviderName): string {
  return `health-probe-${provider}-${registryId}`;
}

/** How often, at most, the window's old rows are deleted (unless a window's worth arrived sooner). */
const PRUNE_INTERVAL_MS = 5_000;

/**
 * The fleet's view of each voice AI provider: one object (`idFromName("global")`) to which every call's object
 * reports outcomes in batches (HealthReporter). Outcomes are kept in SQLite for a sliding window (5 minutes, at most
 * 200 per provider); consecutive connect failures, last success/failure and the probe schedule are kept per
 * provider, beyond the window. An offline provider is probed from the object's alarm every PROVIDER_HEALTH_PROBE_SECONDS.
 *
 * A little over the ~300 lines a part aims at: one object's storage, health figures and probes, which share its
 * tables and its one alarm.
 */
export class ProviderHealthRegistry extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly log = createLogger({ component: "provider_health" });
  private gaugesPushedAt = 0;
  private prunedAt = 0;
  private insertedSincePrune = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS health_outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL, kind TEXT NOT NULL, latency_ms REAL, at INTEGER NOT NULL)",
    );
    this.sql.exec("CREATE INDEX IF NOT EXISTS health_outcomes_by_provider ON health_outcomes (provider, at)");
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS health_providers (provider TEXT PRIMARY KEY, consecutive_failures INTEGER NOT NULL,
        last_connect_success_at INTEGER, last_success_at INTEGER, last_failure_at INTEGER, next_probe_at INTEGER,
        probe_due INTEGER NOT NULL)`,
    );
  }

  /** Records a batch of outcomes (malformed entries are skipped); answers how many were taken. */
  async report(batch: HealthReport[]): Promise<{ accepted: number }> {
    const now = Date.now();
    const reports = (Array.isArray(batch) ? batch.slice(0, MAX_BATCH) : [])
      .map((report) => sanitize(report, now))
      .filter((report): report is HealthReport => report !== null)
      .sort((a, b) => a.at - b.at);
    const thresholds = healthThresholds(this.env);
    for (const report of reports) this.apply(report, thresholds, now);
    this.prune(now, reports.length);
    await this.scheduleProbe();
    this.reportGauges(now);
    return { accepted: reports.length };
  }

  /**
   * `provider_health_state` for the fleet's metrics, at most every PUSH_INTERVAL_MS (reports arrive with every call's
   * news); it lasts ten minutes, well past the probe round that refreshes it while nothing else happens.
   */
  private reportGauges(now: number): void {
    if (now - this.gaugesPushedAt < PUSH_INTERVAL_MS) return;
    this.gaugesPushedAt = now;
    const values = this.snapshot().map((health): [string, number] => [
      seriesKey("provider_health_state", { provider: health.provider }),
      PROVIDER_HEALTH_STATES.indexOf(health.state),
    ]);
    this.ctx.waitUntil(pushMetrics(this.env, { source: "provider-health-registry", values, ttlMs: 10 * 60_000 }));
  }

  /** Every provider's state and figures, now. */
  snapshot(): ProviderHealth[] {
    const now = Date.now();
    const thresholds = healthThresholds(this.env);
    return PROVIDERS.map((provider) => this.healthOf(provider, thresholds, now));
  }

  /** Marks offline providers whose probe is due, probes the configured ones, and schedules the next round. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    const thresholds = healthThresholds(this.env);
    const probeMs = thresholds.probeSeconds * 1000;
    const due = this.rows().filter(
      (row) => row.consecutive_failures >= thresholds.offlineAfter && row.next_probe_at !== null && row.next_probe_at <= now,
    );
    for (const row of due) {
      this.save({ ...row, probe_due: 1, next_probe_at: now + probeMs });
    }
    await Promise.all(due.filter((row) => providerConfigured(this.env, row.provider)).map((row) => this.probe(row.provider)));
    await this.scheduleProbe();
    this.reportGauges(Date.now());
  }

  private async probe(provider: ProviderName): Promise<void> {
    const started = Date.now();
    const correlationId = probeCorrelationId(this.ctx.id.toString(), provider);
    const attempt = connectProvider(this.env, provider, () => {}, {
      instructions: "Health probe: say nothing.",
      tools: [],
      history: [],
      callAudio: { encoding: "pcmu", sampleRate: 8000 },
      correlationId,
      log: this.log.child({ correlationId }),
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("probe timed out")), PROBE_TIMEOUT_MS);
    });
    let ok = false;
    let session: VoiceProvider | null = null;
    try {
      session = await Promise.race([attempt, timeout]);
      ok = true;
    } catch (error) {
      // A late connection after the timeout is closed, never left open.
      attempt.then(
        (late) => late.close(),
        () => {},
      );
      this.log.warn("provider_health.probe_failed", { provider, reason: reasonOf(error) });
    } finally {
      clearTimeout(timer);
      session?.close();
    }
    const at = Date.now();
    if (ok) this.log.info("provider_health.probe_succeeded", { provider, ms: at - started });
    this.apply({ provider, kind: ok ? "connect_success" : "connect_failure", at }, healthThresholds(this.env), at);
    this.prune(at);
  }

  private apply(report: HealthReport, thresholds: HealthThresholds, now: number): void {
    this.sql.exec(
      "INSERT INTO health_outcomes (provider, kind, latency_ms, at) VALUES (?, ?, ?, ?)",
      report.provider,
      report.kind,
      report.latencyMs ?? null,
      report.at,
    );
    const row = this.row(report.provider);
    const success = report.kind === "connect_success" || report.kind === "response";
    if (success) row.last_success_at = Math.max(row.last_success_at ?? report.at, report.at);
    else row.last_failure_at = Math.max(row.last_failure_at ?? report.at, report.at);
    const wasOffline = row.consecutive_failures >= thresholds.offlineAfter;
    if (report.kind === "connect_success" && report.at >= (row.last_connect_success_at ?? -Infinity)) {
      row.last_connect_success_at = report.at;
      // Failures reported late but newer than this success still count.
      const [newer] = this.sql
        .exec<{ n: number }>(
          "SELECT COUNT(*) AS n FROM health_outcomes WHERE provider = ? AND kind = 'connect_failure' AND at > ?",
          report.provider,
          report.at,
        )
        .toArray();
      row.consecutive_failures = newer?.n ?? 0;
    } else if (report.kind === "connect_failure" && report.at > (row.last_connect_success_at ?? -Infinity)) {
      row.consecutive_failures += 1;
      // Newly offline, or a probe (or a session trying a probe-due provider) failed: next probe a full interval away.
      if (row.consecutive_failures >= thresholds.offlineAfter && (!wasOffline || row.probe_due === 1 || row.next_probe_at === null)) {
        row.next_probe_at = now + thresholds.probeSeconds * 1000;
      }
      row.probe_due = 0;
    }
    if (row.consecutive_failures < thresholds.offlineAfter) {
      row.next_probe_at = null;
      row.probe_due = 0;
    } else if (!wasOffline) {
      this.log.warn("provider_health.offline", { provider: report.provider, consecutiveFailures: row.consecutive_failures });
    }
    if (wasOffline && row.consecutive_failures < thresholds.offlineAfter) {
      this.log.info("provider_health.recovered", { provider: report.provider });
    }
    this.save(row);
  }

  /**
   * Bounded storage: the window in time, and the newest WINDOW_OUTCOMES per provider. Every report batch of every
   * live call lands here, so the deletes run every few seconds or once a window's worth of rows has arrived, not
   * per batch: the table holds at most about twice the window, and the figures only ever read the window.
   */
  private prune(now: number, inserted = 0): void {
    this.insertedSincePrune += inserted;
    if (now - this.prunedAt < PRUNE_INTERVAL_MS && this.insertedSincePrune < WINDOW_OUTCOMES) return;
    this.prunedAt = now;
    this.insertedSincePrune = 0;
    this.sql.exec("DELETE FROM health_outcomes WHERE at < ?", now - WINDOW_MS);
    for (const provider of PROVIDERS) {
      this.sql.exec(
        `DELETE FROM health_outcomes WHERE provider = ? AND id NOT IN
          (SELECT id FROM health_outcomes WHERE provider = ? ORDER BY at DESC, id DESC LIMIT ?)`,
        provider,
        provider,
        WINDOW_OUTCOMES,
      );
    }
  }

  private healthOf(provider: ProviderName, thresholds: HealthThresholds, now: number): ProviderHealth {
    const row = this.row(provider);
    const outcomes = this.sql
      .exec<OutcomeRow>(
        "SELECT kind, latency_ms FROM health_outcomes WHERE provider = ? AND at >= ? ORDER BY at DESC, id DESC LIMIT ?",
        provider,
        now - WINDOW_MS,
        WINDOW_OUTCOMES,
      )
      .toArray();
    const samples = outcomes.length;
    const successes = outcomes.filter((o) => o.kind === "connect_success" || o.kind === "response").length;
    const errors = outcomes.filter((o) => o.kind === "error").length;
    const latencies = outcomes
      .filter((o) => o.kind === "response" && o.latency_ms !== null)
      .map((o) => o.latency_ms as number)
      .sort((a, b) => a - b);
    const p95LatencyMs = latencies.length === 0 ? null : latencies[Math.ceil(0.95 * latencies.length) - 1]!;
    const successRate = samples === 0 ? null : successes / samples;
    const offline = row.consecutive_failures >= thresholds.offlineAfter;
    let state: ProviderHealth["state"];
    if (offline) state = "offline";
    else if (samples === 0) state = "unknown";
    else if (
      (samples >= thresholds.minSamples && successRate! < thresholds.minSuccessRate) ||
      (p95LatencyMs !== null && p95LatencyMs >= thresholds.latencyErrorMs)
    ) {
      state = "unhealthy";
    } else if (p95LatencyMs !== null && p95LatencyMs >= thresholds.latencyWarningMs) state = "degraded";
    else state = "healthy";
    return {
      provider,
      state,
      successRate,
      errorRate: samples === 0 ? null : errors / samples,
      p95LatencyMs,
      consecutiveFailures: row.consecutive_failures,
      samples,
      lastSuccessAt: row.last_success_at,
      lastFailureAt: row.last_failure_at,
      nextProbeAt: offline ? row.next_probe_at : null,
      probeDue: offline && row.probe_due === 1,
    };
  }

  /** The alarm wakes the object at the earliest probe of an offline provider. */
  private async scheduleProbe(): Promise<void> {
    const { offlineAfter } = healthThresholds(this.env);
    const next = this.rows()
      .filter((row) => row.consecutive_failures >= offlineAfter && row.next_probe_at !== null)
      .reduce<number | null>((min, row) => (min === null || row.next_probe_at! < min ? row.next_probe_at : min), null);
    const current = await this.ctx.storage.getAlarm();
    if (next === null) {
      if (current !== null) await this.ctx.storage.deleteAlarm();
    } else if (current === null || current !== next) {
      await this.ctx.storage.setAlarm(next);
    }
  }

  private rows(): ProviderRow[] {
    return this.sql.exec<ProviderRow>("SELECT * FROM health_providers").toArray();
  }

  private row(provider: ProviderName): ProviderRow {
    const [row] = this.sql.exec<ProviderRow>("SELECT * FROM health_providers WHERE provider = ?", provider).toArray();
    return (
      row ?? {
        provider,
        consecutive_failures: 0,
        last_connect_success_at: null,
        last_success_at: null,
        last_failure_at: null,
        next_probe_at: null,
        probe_due: 0,
      }
    );
  }

  private save(row: ProviderRow): void {
    this.sql.exec(
      `INSERT INTO health_providers (provider, consecutive_failures, last_connect_success_at, last_success_at, last_failure_at, next_probe_at, probe_due)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (provider) DO UPDATE SET consecutive_failures = excluded.consecutive_failures,
          last_connect_success_at = excluded.last_connect_success_at, last_success_at = excluded.last_success_at,
          last_failure_at = excluded.last_failure_at, next_probe_at = excluded.next_probe_at, probe_due = excluded.probe_due`,
      row.provider,
      row.consecutive_failures,
      row.last_connect_success_at,
      row.last_success_at,
      row.last_failure_at,
      row.next_probe_at,
      row.probe_due,
    );
  }
}

/** One report as the RPC received it, or null when it is malformed; a future time is taken as now. */
function sanitize(input: unknown, now: number): HealthReport | null {
  if (typeof input !== "object" || input === null) return null;
  const { provider, kind, latencyMs, at } = input as Record<string, unknown>;
  if (!providerSchema.safeParse(provider).success) return null;
  if (!(HEALTH_REPORT_KINDS as readonly unknown[]).includes(kind)) return null;
  if (typeof at !== "number" || !Number.isFinite(at)) return null;
  const latency =
    typeof latencyMs === "number" && Number.isFinite(latencyMs) && latencyMs >= 0 ? Math.min(latencyMs, 3_600_000) : undefined;
  return { provider: provider as ProviderName, kind: kind as HealthReportKind, latencyMs: latency, at: Math.min(at, now) };
}
