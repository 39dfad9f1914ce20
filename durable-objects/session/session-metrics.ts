import {
  metrics,
  metricsDue,
  PUSH_INTERVAL_MS,
  pushMetrics,
  pushWithinInterval,
  queueGauges,
} from "../../workers/shared/observability/metrics.ts";
import type { VoiceStats } from "../voice/voice-session-types.ts";

/**
 * How often a live session reports its gauges. They change rarely (a socket, a breaker, an outbox); a report is
 * three counts of the session's outboxes, queued for the isolate's next push (every session of the isolate in one RPC
 * per shard: at 100 calls a report each was ten RPCs a second).
 */
const GAUGE_REPORT_MS = 2 * PUSH_INTERVAL_MS;
/** A live session's gauges lapse this long after its last report (three reports), as an evicted session's do. */
const GAUGE_TTL_MS = 3 * GAUGE_REPORT_MS;

interface SessionMetricsParts {
  env: Env;
  /** The session's id (the metrics source of its gauges); null before the session is known. */
  sessionId(): string | null;
  /** The session's gauges as they stand (series key → value). */
  gauges(): Array<[string, number]>;
  /** The voice session's counters, null when there is none (they restart at zero with a new voice session). */
  stats(): VoiceStats | null;
  waitUntil(task: Promise<unknown>): void;
}

/**
 * The session's part in the fleet's metrics: while it lives, at most every PUSH_INTERVAL_MS, it turns its voice
 * counters into the isolate's deltas (read from counters the audio path keeps anyway), which go when the isolate's
 * cadence says; every GAUGE_REPORT_MS it queues a report of its gauges to go with them; when it ends, one last push
 * withdraws its gauges.
 * Pushes ride on the session's own activity (`tick`: its audio, its carrier events) rather than a timer: a timer
 * that never stops would keep the object from ever being evicted, and a session with no activity at all is one
 * whose gauges may lapse.
 */
export class SessionMetrics {
  private isLive = false;
  private lastTick = 0;
  private lastGauges = 0;
  /** The gauges the last end-of-session push sent: an alarm after the end sends them again only if they changed. */
  private endedWith: string | null = null;
  private baseline: { stats: VoiceStats | null; seen: Pick<VoiceStats, "callerFrames" | "callerFramesDropped" | "agentChunks"> } = {
    stats: null,
    seen: { callerFrames: 0, callerFramesDropped: 0, agentChunks: 0 },
  };

  constructor(private readonly parts: SessionMetricsParts) {}

  /** The session is live: its activity pushes from now on. */
  live(): void {
    this.isLive = true;
  }

  /**
   * Something happened in the session (a frame, an event): a push goes out if one is due. On the audio path this is
   * one comparison; the push itself (every PUSH_INTERVAL_MS) is not awaited.
   */
  tick(now = Date.now()): void {
    if (!this.isLive || now - this.lastTick < PUSH_INTERVAL_MS) return;
    this.lastTick = now;
    this.countFrames();
    if (now - this.lastGauges >= GAUGE_REPORT_MS) {
      this.lastGauges = now;
      const report = this.report();
      if (report) queueGauges(report);
    }
    if (metricsDue(now)) this.parts.waitUntil(pushMetrics(this.parts.env));
  }

  /** The session is ending: no more pushes from its activity, and its frames counted while its voice session holds them. */
  ending(): void {
    this.isLive = false;
    this.countFrames();
  }

  /**
   * The session ended (or its alarm ran after the end): the last counts go, and its gauges as they stand now — none,
   * which withdraws them, unless its outboxes still wait for D1 — within the isolate's push interval, with whatever
   * else ended meanwhile (pushWithinInterval); an alarm after the end whose gauges have not changed since leaves its
   * counts to the isolate's cadence. Resolves once pushed: for `waitUntil`, not for an answer to wait on.
   */
  ended(): Promise<void> {
    this.ending();
    const report = this.report();
    const values = report ? JSON.stringify(report.values) : null;
    if (values !== null && values === this.endedWith) return metricsDue() ? pushMetrics(this.parts.env) : Promise.resolve();
    this.endedWith = values;
    if (report) queueGauges(report);
    return pushWithinInterval(this.parts.env);
  }

  private report() {
    const source = this.parts.sessionId();
    return source ? { source: `session-${source}`, values: this.parts.gauges(), ttlMs: GAUGE_TTL_MS } : null;
  }

  private countFrames(): void {
    const stats = this.parts.stats();
    if (!stats) return;
    if (stats !== this.baseline.stats) this.baseline = { stats, seen: { callerFrames: 0, callerFramesDropped: 0, agentChunks: 0 } };
    const seen = this.baseline.seen;
    metrics.count("media_frames_total", { direction: "in" }, stats.callerFrames - seen.callerFrames);
    metrics.count("media_frames_total", { direction: "out" }, stats.agentChunks - seen.agentChunks);
    metrics.count("media_frames_dropped_total", { reason: "overflow" }, stats.callerFramesDropped - seen.callerFramesDropped);
    this.baseline.seen = {
      callerFrames: stats.callerFrames,
      callerFramesDropped: stats.callerFramesDropped,
      agentChunks: stats.agentChunks,
    };
  }
}
