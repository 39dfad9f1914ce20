import type { Logger } from "../../workers/shared/logger.ts";

/**
 * The call's outboxes — its history (`events`), its transcript and its provider switches — hold what D1 has not
 * accepted yet, in the object's own storage, so a D1 outage of any length loses nothing. What bounds them:
 *
 * - Work per wake-up: each drain sends at most DRAIN_BATCHES_PER_WAKE batches and continues DRAIN_CONTINUE_MS later,
 *   so a backlog built over hours reaches D1 in steps, each far inside an invocation's 1,000-query limit, instead of
 *   one drain that can never finish (and would retry forever).
 * - Retries: a failed drain retries with backoff up to five minutes (RETRY_MS), not every few seconds for hours.
 * - Size: past OUTBOX_BOUNDS an outbox says so — once per crossing, as an error log naming what it keeps — and the
 *   session's `pendingSync` counts what waits. Nothing is dropped past the bound: the call's own storage keeps
 *   every entry until D1 accepts it (an object has gigabytes; a bound here is where an operator should look).
 */
export const OUTBOX_BOUNDS = { events: 1_000, transcript: 5_000, switches: 100 } as const;
export type OutboxKind = keyof typeof OUTBOX_BOUNDS;

export const DRAIN_BATCHES_PER_WAKE = 10;
export const DRAIN_CONTINUE_MS = 1_000;
const RETRY_MS = [2_000, 5_000, 15_000, 60_000, 300_000];

/** How a drain ended: everything in D1, stopped at its batch bound with more to send, or D1 failed. */
export type DrainResult = "drained" | "more" | "failed";

/** When a drain that did not finish runs again: soon after "more", with a growing backoff after failures. */
export class DrainRetry {
  private failures = 0;

  /** The wait before the next drain, or null when the outbox is empty. */
  after(result: DrainResult): number | null {
    if (result === "failed") return RETRY_MS[Math.min(this.failures++, RETRY_MS.length - 1)]!;
    this.failures = 0;
    return result === "more" ? DRAIN_CONTINUE_MS : null;
  }
}

/** What waits for D1 in each outbox of a session, and which are past their bound. */
export interface PendingSync {
  events: number;
  transcriptLines: number;
  switches: number;
  overBound: OutboxKind[];
}

/** Says once per crossing that an outbox is past its bound (and again after it has come back under). */
export class BacklogWatch {
  private readonly over = new Set<OutboxKind>();

  constructor(private readonly log: () => Logger) {}

  observe(kind: OutboxKind, pending: number): void {
    if (pending <= OUTBOX_BOUNDS[kind]) {
      this.over.delete(kind);
      return;
    }
    if (this.over.has(kind)) return;
    this.over.add(kind);
    this.log().error("call.outbox_over_bound", {
      outbox: kind,
      pending,
      bound: OUTBOX_BOUNDS[kind],
      kept: "every entry, in the call's own storage, until D1 accepts it",
    });
  }
}
