import { reasonOf } from "../../workers/shared/errors.ts";
import { createLogger } from "../../workers/shared/logger.ts";
import { type HealthReport, REGISTRY_NAME } from "../../workers/shared/provider-health.ts";

export type { HealthReport } from "../../workers/shared/provider-health.ts";

export interface HealthReporterOptions {
  /** The registry object's name (tests use their own); default "global". */
  registryName?: string;
  /** Flush as soon as this many outcomes are queued; default 20. */
  batchSize?: number;
  /** Flush this long after the first unflushed failure or error; default 2,000 ms. */
  delayMs?: number;
  /** Flush this long after the first unflushed success (a connect or an answer's latency); default 10,000 ms. */
  successDelayMs?: number;
  /** The queue keeps at most this many outcomes, dropping the oldest; default 500. */
  maxQueued?: number;
}

/**
 * Collects provider outcomes inside a call's object and sends them to the health registry in batches, off the audio
 * path. Usage from the call's object (once per object):
 *
 *   const health = new HealthReporter(env, (task) => ctx.waitUntil(task));
 *   health.record({ provider, kind: "connect_success", at: Date.now() });            // provider connected
 *   health.record({ provider, kind: "connect_failure", at: Date.now() });            // refused / timed out / setup failed
 *   health.record({ provider, kind: "error", at: Date.now() });                      // mid-session provider error
 *   health.record({ provider, kind: "response", latencyMs, at: Date.now() });        // caller stopped → first agent audio
 *   await health.flush();                                                           // e.g. when the call ends
 *
 * `record` never waits and never throws. A batch is sent when 20 outcomes are queued, 2 s after the first unflushed
 * failure or error (bad news reaches the fleet fast: other calls fail over on it), and 10 s after the first unflushed
 * success (a latency sample per answer: batched, every live call's RPC and registry write would otherwise land every
 * couple of seconds on the one registry). A timer is armed only while something is queued. When the registry cannot
 * be reached the batch is kept (bounded, oldest dropped beyond 500) and retried on the next flush; `flush` never
 * throws.
 */
export class HealthReporter {
  private queue: HealthReport[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** When the armed timer fires (it is re-armed earlier when bad news arrives). */
  private timerDueAt = 0;
  private sending: Promise<void> = Promise.resolve();
  private flushWaiting = false;
  private readonly registryName: string;
  private readonly batchSize: number;
  private readonly delayMs: number;
  private readonly successDelayMs: number;
  private readonly maxQueued: number;
  private readonly log = createLogger({ component: "provider_health_reporter" });

  constructor(
    private readonly env: Env,
    private readonly schedule: (task: Promise<unknown>) => void,
    options: HealthReporterOptions = {},
  ) {
    this.registryName = options.registryName ?? REGISTRY_NAME;
    this.batchSize = options.batchSize ?? 20;
    this.delayMs = options.delayMs ?? 2_000;
    this.successDelayMs = options.successDelayMs ?? 10_000;
    this.maxQueued = options.maxQueued ?? 500;
  }

  /** Outcomes waiting to be sent. */
  get pending(): number {
    return this.queue.length;
  }

  record(report: HealthReport): void {
    this.queue.push(report);
    if (this.queue.length > this.maxQueued) this.queue.splice(0, this.queue.length - this.maxQueued);
    if (this.queue.length >= this.batchSize) this.schedule(this.flush());
    else this.arm(isSuccess(report) ? this.successDelayMs : this.delayMs);
  }

  /** Sends everything queued; on failure keeps it for the next flush. Never throws. */
  flush(): Promise<void> {
    this.disarm();
    // One batch at a time, in order; a flush already waiting to start will take whatever is queued by then.
    if (this.flushWaiting) return this.sending;
    this.flushWaiting = true;
    this.sending = this.sending.then(() => {
      this.flushWaiting = false;
      return this.send();
    });
    return this.sending;
  }

  private async send(): Promise<void> {
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    try {
      const namespace = this.env.PROVIDER_HEALTH;
      await namespace.get(namespace.idFromName(this.registryName)).report(batch);
    } catch (error) {
      // Kept for next time, ahead of what arrived meanwhile; still bounded.
      this.queue = [...batch, ...this.queue];
      if (this.queue.length > this.maxQueued) this.queue.splice(0, this.queue.length - this.maxQueued);
      this.log.warn("provider_health.report_failed", {
        queued: this.queue.length,
        reason: reasonOf(error),
      });
      this.arm(this.delayMs);
    }
  }

  private arm(delayMs: number): void {
    if (this.queue.length === 0) return;
    const dueAt = Date.now() + delayMs;
    if (this.timer !== null) {
      if (this.timerDueAt <= dueAt) return;
      clearTimeout(this.timer);
    }
    this.timerDueAt = dueAt;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.schedule(this.flush());
    }, delayMs);
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

const isSuccess = (report: HealthReport): boolean => report.kind === "connect_success" || report.kind === "response";
