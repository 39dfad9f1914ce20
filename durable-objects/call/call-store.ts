import type { PromptRef } from "../../workers/shared/db/prompts.ts";
import type { CallStatus, Carrier, RecordingMode } from "../../workers/shared/db/schema.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import type { PartTables } from "../session-tables.ts";
import type { MachineDetectionState } from "./answering-machine.ts";

/**
 * The call object's own storage (SQLite, the hot tier). The record and the events waiting for D1 are written
 * together with no await between them, so they commit atomically; the outbox is drained to D1 in order and only
 * acknowledged after D1 accepted it, so a D1 outage delays the durable record but never loses it.
 *
 * An acknowledgement is kept in memory and its deletion rides on the next write's commit (`save`), not a commit of
 * its own: every commit holds the object's outgoing audio until it is durable, and a call's D1 syncs come in the
 * same moments as its audio (setup, media start). Lost to an eviction, an acknowledgement only means the entries
 * are sent again: D1 takes them idempotently (d1-sync.ts).
 */
export interface CallRecord {
  sessionId: string;
  tenantId: string;
  callId: string;
  carrier: Carrier;
  carrierCallId: string | null;
  direction: "inbound" | "outbound";
  from: string;
  to: string;
  status: CallStatus;
  failureReason: string | null;
  answeredAt: number | null;
  endedAt: number | null;
  createdAt: number;
  updatedAt: number;
  provider: ProviderName;
  instructions: string | null;
  /** The prompt version the instructions came from; absent on records written before prompts existed. */
  prompt?: PromptRef | null;
  codec: "PCMU" | "PCMA";
  /** The number's own recording setting (the one called, or called from), over the tenant's; absent on older records. */
  recording?: RecordingMode | null;
  correlationId: string;
  lastCarrierSequence: number | null;
  eventSeq: number;
  stream: { state: "none" | "connected" | "started" | "stopped"; streamId: string | null; encoding: "pcmu" | "pcma" | null };
  /** The KV call → session index has been written (once per call: KV allows ~1 write per second per key). */
  carrierIndexed: boolean;
  answerCommanded: boolean;
  /** Answering-machine detection (outbound calls that asked for it); absent on other calls and older records. */
  amd?: MachineDetectionState | null;
  /**
   * A recorded call answered by command whose consent message is said before its stream (consent-first.ts):
   * `speaking` until the stream is asked for, then `streamed`; absent on other calls.
   */
  consent?: "speaking" | "streamed";
  /**
   * An outbound call recorded with a consent message: dialled without its stream on a carrier that answers by
   * command, whose callee hears the message once they answer (and are known to be a person) before the stream
   * starts. A carrier answering by its webhook's response says it there instead. False or absent on other calls.
   */
  consentAtAnswer?: boolean;
}

export interface CallEventRow {
  seq: number;
  source: "carrier" | "api" | "system";
  event: string;
  fromStatus: CallStatus | null;
  toStatus: CallStatus | null;
  outcome: "applied" | "ignored" | "rejected";
  carrierSequence: number | null;
  carrierTimestamp: number | null;
  detail: string | null;
  occurredAt: number;
}

/**
 * Deliveries are remembered for a day, and at most this many (a call gets tens): within a day every replay of a
 * remembered delivery is a duplicate; later, an ended call refuses carrier events anyway (carrier-events.ts).
 */
const MAX_REMEMBERED_DELIVERIES = 2_000;
/** Old deliveries are pruned once per this many new ones (a call's tens never reach it), not with each insert. */
const PRUNE_EVERY = 100;
export const DELIVERY_MEMORY_MS = 24 * 60 * 60_000;

export const CALL_STORE_TABLES: PartTables = {
  names: ["call_record", "deliveries", "outbox"],
  ddl: `CREATE TABLE IF NOT EXISTS call_record (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS deliveries (key TEXT PRIMARY KEY, at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)`,
};

export class CallStore {
  /** Outbox entries up to this id are in D1; deleted from storage with the next write (or `forgetAcknowledged`). */
  private acknowledgedThrough = 0;
  private deletedThrough = 0;
  /** Entries appended so far: a drain knows whether any came while it waited for D1. */
  appended = 0;
  /** `appended` when a drain last found nothing pending: until the next append, the count needs no query. */
  private drainedAt: number | null = null;
  /** New deliveries until the next prune: an object that starts with deliveries stored prunes at its first. */
  private untilPrune: number;

  /** `empty`: the object has stored nothing yet (session-tables.ts), so its outbox is known to be drained. */
  constructor(
    private readonly sql: SqlStorage,
    empty = false,
  ) {
    if (empty) this.drainedAt = 0;
    this.untilPrune = empty ? PRUNE_EVERY : 1;
  }

  load(): CallRecord | null {
    const row = this.sql.exec<{ body: string }>("SELECT body FROM call_record WHERE id = 1").toArray()[0];
    return row ? (JSON.parse(row.body) as CallRecord) : null;
  }

  save(record: CallRecord): void {
    this.forgetAcknowledged();
    this.sql.exec(
      "INSERT INTO call_record (id, body) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
      JSON.stringify(record),
    );
  }

  /** True the first time a delivery key is seen; retries and replays answer false. */
  firstDelivery(key: string, now: number): boolean {
    const inserted = this.sql.exec("INSERT OR IGNORE INTO deliveries (key, at) VALUES (?, ?)", key, now).rowsWritten > 0;
    if (inserted && --this.untilPrune === 0) {
      this.untilPrune = PRUNE_EVERY;
      this.sql.exec(
        "DELETE FROM deliveries WHERE at < ? OR key IN (SELECT key FROM deliveries ORDER BY at DESC LIMIT -1 OFFSET ?)",
        now - DELIVERY_MEMORY_MS,
        MAX_REMEMBERED_DELIVERIES,
      );
    }
    return inserted;
  }

  append(event: CallEventRow): void {
    this.sql.exec("INSERT INTO outbox (body) VALUES (?)", JSON.stringify(event));
    this.appended++;
  }

  pending(limit: number): Array<{ id: number; event: CallEventRow }> {
    return this.sql
      .exec<{ id: number; body: string }>("SELECT id, body FROM outbox WHERE id > ? ORDER BY id LIMIT ?", this.acknowledgedThrough, limit)
      .toArray()
      .map((row) => ({ id: row.id, event: JSON.parse(row.body) as CallEventRow }));
  }

  pendingCount(): number {
    if (this.drainedAt === this.appended) return 0;
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox WHERE id > ?", this.acknowledgedThrough).one().n;
  }

  /** A drain found every entry appended so far accepted by D1. */
  markDrained(): void {
    this.drainedAt = this.appended;
  }

  /** D1 accepted the entries up to `throughId`: in memory until the next write. */
  acknowledge(throughId: number): void {
    this.acknowledgedThrough = Math.max(this.acknowledgedThrough, throughId);
  }

  /** Deletes the acknowledged entries now (a write: the caller's commit, or one of its own when nothing follows). */
  forgetAcknowledged(): void {
    if (this.acknowledgedThrough <= this.deletedThrough) return;
    this.sql.exec("DELETE FROM outbox WHERE id <= ?", this.acknowledgedThrough);
    this.deletedThrough = this.acknowledgedThrough;
  }
}
