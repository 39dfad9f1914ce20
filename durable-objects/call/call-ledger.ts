import { deriveSessionId } from "../../workers/carriers/session-routing.ts";
import { rememberCarrierCall } from "../../workers/shared/db/directory.ts";
import type { CallStatus } from "../../workers/shared/db/schema.ts";
import type { StatementRunner } from "../../workers/shared/db/shared-batch.ts";
import { reasonOf } from "../../workers/shared/errors.ts";
import { createLogger, type Logger } from "../../workers/shared/logger.ts";
import type { AlarmSchedule } from "../alarm-schedule.ts";
import { type CallEventRow, type CallRecord, CallStore } from "./call-store.ts";
import { syncToD1 } from "./d1-sync.ts";
import { BacklogWatch, DRAIN_BATCHES_PER_WAKE, type DrainResult, DrainRetry } from "./outbox-backlog.ts";
import { decideTransition, isTerminal, type TransitionSource } from "./state-machine.ts";

const OUTBOX_BATCH = 50;
/**
 * How long the media stream's lifecycle frames (start, stop, DTMF) wait for D1 (`flushSoon`): a stop is followed in
 * a moment by the carrier's status callback, whose flush takes it, so a call's end is one D1 batch, not two; a start
 * goes a little after the burst of its call's setup. D1 lags the object's storage (the durable record) by at most
 * this much meanwhile.
 */
const SETTLE_MS = 2_000;

export type NewCall = Omit<
  CallRecord,
  | "status"
  | "failureReason"
  | "answeredAt"
  | "endedAt"
  | "createdAt"
  | "updatedAt"
  | "lastCarrierSequence"
  | "eventSeq"
  | "stream"
  | "carrierIndexed"
>;

/** An applied move of the state machine, after it is stored (what live watchers are told). */
export interface AppliedTransition {
  from: CallStatus;
  to: CallStatus;
  reason: string | null;
  event: string;
  at: number;
}

export interface CallLedgerOptions {
  /** Called after `transition` applies (and stores) a move; must not throw (a throw is logged and swallowed). */
  onTransition?: (change: AppliedTransition) => void;
  /** The object has stored nothing yet (session-tables.ts): no record to load, no outbox to count. */
  empty?: boolean;
  /** What sends the outbox's batches to D1 (the object's shared batch); a scope of the call's tenant if absent. */
  d1Writes?: StatementRunner;
}

type EventFields = {
  from: CallStatus | null;
  to: CallStatus | null;
  outcome: CallEventRow["outcome"];
  detail?: string | null;
  carrierSequence?: number | null;
  carrierTimestamp?: number | null;
};

/**
 * The call's state and its history: every change is written to the object's storage synchronously (record and
 * event together), then drained to D1 in order by `flush`. One flush runs at a time so an older state can never
 * land in D1 after a newer one; a failed flush is retried from the alarm with backoff (outbox-backlog.ts says
 * what bounds the outbox).
 */
export class CallLedger {
  record: CallRecord | null;
  private readonly store: CallStore;
  private flushChain: Promise<void> = Promise.resolve();
  private queuedFlush: Promise<void> | null = null;
  private settleTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly retry = new DrainRetry();
  private readonly backlog = new BacklogWatch(() => this.log());

  constructor(
    ctx: DurableObjectState,
    private readonly env: Env,
    private readonly alarm: AlarmSchedule,
    /** The call reached a terminal state, moved there by `source`. */
    private readonly onTerminal: (source: TransitionSource) => void,
    private readonly options: CallLedgerOptions = {},
  ) {
    this.store = new CallStore(ctx.storage.sql, options.empty);
    this.record = options.empty ? null : this.store.load();
  }

  log(correlationId?: string): Logger {
    const record = this.record;
    return createLogger({
      correlationId: correlationId ?? record?.correlationId ?? "unknown",
      tenantId: record?.tenantId,
      sessionId: record?.sessionId,
      callId: record?.callId,
      provider: record?.provider,
    });
  }

  create(fields: NewCall, event: string, detail: string | null = null): CallRecord {
    const now = Date.now();
    this.record = {
      ...fields,
      status: "initiated",
      failureReason: null,
      answeredAt: null,
      endedAt: null,
      createdAt: now,
      updatedAt: now,
      lastCarrierSequence: null,
      eventSeq: 0,
      stream: { state: "none", streamId: null, encoding: null },
      carrierIndexed: false,
    };
    const source = fields.direction === "inbound" ? "carrier" : "api";
    this.note(source, event, { from: null, to: "initiated", outcome: "applied", detail });
    this.log().info("call.transition", { from: null, to: "initiated", source, trigger: event, reason: detail });
    return this.record;
  }

  firstDelivery(key: string): boolean {
    return this.store.firstDelivery(key, Date.now());
  }

  /** Saves the record after an in-place change that needs no history line. */
  save(): void {
    if (this.record) this.store.save(this.record);
  }

  /** Applies (or records the refusal of) one move of the state machine. */
  transition(
    to: CallStatus,
    source: TransitionSource,
    event: string,
    reason?: string,
    carrierMeta: { carrierSequence: number | null; carrierTimestamp: number | null } = { carrierSequence: null, carrierTimestamp: null },
  ): CallEventRow["outcome"] {
    const record = this.record!;
    const verdict = decideTransition(record.status, to, source);
    if (verdict.outcome === "applied") {
      const now = Date.now();
      record.status = to;
      if (to === "in_progress" && record.answeredAt === null) record.answeredAt = now;
      if (isTerminal(to)) {
        record.endedAt = now;
        record.failureReason = to === "failed" ? (reason ?? "carrier_failure") : null;
        this.onTerminal(source);
      }
      record.updatedAt = now;
    } else if (verdict.outcome === "rejected") {
      this.log().warn("call.transition_rejected", { from: verdict.from, to, trigger: event });
    }
    const detail = verdict.outcome === "applied" ? (reason ?? null) : verdict.why;
    const outcome = this.note(source, event, { from: verdict.from, to, outcome: verdict.outcome, detail, ...carrierMeta });
    if (outcome === "applied") this.log().info("call.transition", { from: verdict.from, to, source, trigger: event, reason: detail });
    if (outcome === "applied" && this.options.onTransition) {
      try {
        this.options.onTransition({
          from: verdict.from,
          to,
          reason: to === "failed" ? record.failureReason : (reason ?? null),
          event,
          at: record.updatedAt,
        });
      } catch (error) {
        this.log().error("call.on_transition_failed", { error, to });
      }
    }
    return outcome;
  }

  /** One line of the call's history (and the record it describes), committed together. */
  note(source: CallEventRow["source"], event: string, fields: EventFields): CallEventRow["outcome"] {
    const record = this.record!;
    record.eventSeq += 1;
    this.store.append({
      seq: record.eventSeq,
      source,
      event,
      fromStatus: fields.from,
      toStatus: fields.to,
      outcome: fields.outcome,
      carrierSequence: fields.carrierSequence ?? null,
      carrierTimestamp: fields.carrierTimestamp ?? null,
      detail: fields.detail ?? null,
      occurredAt: Date.now(),
    });
    this.store.save(record);
    return fields.outcome;
  }

  /**
   * Drains the outbox to D1 after any flush already running. Calls made while one is waiting share it: it starts
   * later and takes every event recorded by then, so a burst of events (webhook, media start) is one D1 batch.
   */
  flush(): Promise<void> {
    // It takes what a settling drain would have.
    if (this.settleTimer !== null) clearTimeout(this.settleTimer);
    this.settleTimer = null;
    this.queuedFlush ??= this.flushChain.then(() => {
      this.queuedFlush = null;
      return this.flushOnce();
    });
    this.flushChain = this.queuedFlush;
    return this.queuedFlush;
  }

  /**
   * Drains the outbox to D1 SETTLE_MS from now, taking whatever was noted by then; asked again meanwhile, the same
   * drain, and a `flush` meanwhile takes it sooner. Only for changes nothing looks up in D1 at once: the call's row
   * is there already, from its webhook's flush.
   */
  flushSoon(): void {
    if (this.settleTimer !== null) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = null;
      void this.flush();
    }, SETTLE_MS);
  }

  /** What waits for D1 (the session's `pendingSync`). */
  pendingCount(): number {
    return this.store.pendingCount();
  }

  private async flushOnce(): Promise<void> {
    const result = await this.drain();
    const delay = this.retry.after(result);
    if (delay !== null) await this.alarm.wakeBy(Date.now() + delay);
  }

  private async drain(): Promise<DrainResult> {
    const record = this.record;
    if (!record) return "drained";
    const result = await this.syncPending(record);
    // Unless D1 just failed, the call's row is in D1 (every synced batch carries it), so the index may point at it.
    const indexed = result !== "failed" && (await this.indexCarrierCall(record));
    // An ended call writes little more: the index is kept now. What D1 acknowledged is deleted by the session's end
    // with the transcript's acknowledged entries, in one commit (call-session.ts, `forgetSynced`).
    if (isTerminal(record.status) && indexed) this.store.save(record);
    return result;
  }

  /** Deletes the outbox entries D1 accepted, now (a write: the caller's commit, with whatever else it writes). */
  forgetAcknowledged(): void {
    this.store.forgetAcknowledged();
  }

  private async syncPending(record: CallRecord): Promise<DrainResult> {
    try {
      for (let batch = 0; batch < DRAIN_BATCHES_PER_WAKE; batch++) {
        const pending = this.store.pending(OUTBOX_BATCH);
        if (pending.length === 0) return this.drained();
        const appendedBefore = this.store.appended;
        await syncToD1(
          this.env,
          record,
          pending.map((item) => item.event),
          this.options.d1Writes,
        );
        this.store.acknowledge(pending.at(-1)!.id);
        // A short batch took all there was, unless more was noted meanwhile: no query to find the outbox empty.
        if (pending.length < OUTBOX_BATCH && this.store.appended === appendedBefore) return this.drained();
      }
      // Stopped at its bound: the rest goes in the next wake-up.
      return this.store.pending(1).length > 0 ? "more" : "drained";
    } catch (error) {
      const pending = this.store.pendingCount();
      this.backlog.observe("events", pending);
      this.log().warn("call.d1_sync_deferred", { error, pending });
      return "failed";
    }
  }

  private drained(): DrainResult {
    this.store.markDrained();
    this.backlog.observe("events", 0);
    return "drained";
  }

  /**
   * The KV call → session index, once the call's carrier id is known and its row is in D1; true when written now.
   * KV is a cache: a failed write is logged and tried again by the next drain, never counted as a D1 failure (that
   * would back off the whole drain), and lookups meanwhile fall back to D1 (directory.ts).
   */
  private async indexCarrierCall(record: CallRecord): Promise<boolean> {
    if (record.carrierIndexed || !record.carrierCallId) return false;
    // An inbound call's session id is derived from its carrier call id: its webhooks find it with no lookup, so a
    // KV write a call would buy nothing (session-routing.ts).
    if (record.sessionId === (await deriveSessionId(record.carrier, record.carrierCallId))) {
      record.carrierIndexed = true;
      return true;
    }
    try {
      await rememberCarrierCall(this.env, record.carrier, record.carrierCallId, { sessionId: record.sessionId, tenantId: record.tenantId });
    } catch (error) {
      this.log().warn("call.carrier_index_deferred", { reason: reasonOf(error) });
      return false;
    }
    // Kept with the record's next write, not a commit of its own (an eviction before it only repeats the KV write).
    record.carrierIndexed = true;
    return true;
  }
}
