import { sql } from "drizzle-orm";
import type { AnalysisLine } from "../../workers/shared/analysis/result.ts";
import { CompiledWrite } from "../../workers/shared/db/compiled-write.ts";
import { transcriptLines, turnTimings } from "../../workers/shared/db/schema.ts";
import type { StatementRunner } from "../../workers/shared/db/shared-batch.ts";
import { type TenantScope, tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import { createLogger } from "../../workers/shared/logger.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import type { TurnRecord } from "../../workers/shared/turn-timings.ts";
import type { PartTables } from "../session-tables.ts";
import { BacklogWatch, DRAIN_BATCHES_PER_WAKE, type DrainResult } from "./outbox-backlog.ts";

/**
 * A session's transcript, in two tiers like the call's ledger, written behind: a line said or changed is kept in
 * memory, and `flush` (called about a second later, off the audio path) writes everything changed since the last
 * flush to the object's SQLite storage in one commit — the lines, their outbox entries, and the deletion of entries
 * D1 already accepted — then drains the outbox to D1 `transcript_lines` in batches. One commit per flush, not one
 * per line and another per drain: a storage write holds the object's outgoing audio until it is durable.
 *
 * What a crash can lose: lines said since the last flush (about a second), which never reached storage. An outbox
 * entry D1 accepted whose deletion had not yet been committed is sent again after a restart; the upsert by id makes
 * that harmless. D1 keeps every line flushed; the object keeps the latest MAX_LINES_KEPT (enough to restore a
 * provider's context after a switch or an eviction). A line that changes later (interrupted) is queued again.
 *
 * Each finished agent turn's timings (latency at the caller's ear) ride the same way: held in memory, written to the
 * outbox in the same commit as the lines, drained to D1 `turn_timings` in the same batches. The object keeps none.
 */
export interface TranscriptLine {
  seq: number;
  role: "caller" | "agent" | "system" | "supervisor";
  text: string;
  provider: ProviderName;
  interrupted: boolean;
  itemId: string | null;
  at: number;
}

export const MAX_TEXT_CHARS = 4_000;
export const MAX_LINES_KEPT = 2_000;
const FLUSH_BATCH = 50;

const upsertLine = new CompiledWrite<"id" | "sessionId" | "seq" | "role" | "text" | "provider" | "interrupted" | "itemId" | "occurredAt">(
  (db, value, tenant) =>
    db
      .insert(transcriptLines)
      .values({
        id: value("id"),
        tenantId: tenant,
        sessionId: value("sessionId"),
        seq: value("seq"),
        role: value("role"),
        text: value("text"),
        provider: value("provider"),
        interrupted: value("interrupted"),
        itemId: value("itemId"),
        occurredAt: value("occurredAt"),
      })
      // Interrupted only ever becomes true, whatever order two copies of a line arrive in.
      .onConflictDoUpdate({
        target: transcriptLines.id,
        set: { interrupted: sql`max(${transcriptLines.interrupted}, excluded.interrupted)` },
      }),
);

const insertTurn = new CompiledWrite<
  | "id"
  | "sessionId"
  | "provider"
  | "itemId"
  | "callerStoppedAt"
  | "providerFirstAudioAt"
  | "firstFrameSentAt"
  | "firstMarkHeardAt"
  | "interrupted"
>((db, value, tenant) =>
  db
    .insert(turnTimings)
    .values({
      id: value("id"),
      tenantId: tenant,
      sessionId: value("sessionId"),
      provider: value("provider"),
      itemId: value("itemId"),
      callerStoppedAt: value("callerStoppedAt"),
      providerFirstAudioAt: value("providerFirstAudioAt"),
      firstFrameSentAt: value("firstFrameSentAt"),
      firstMarkHeardAt: value("firstMarkHeardAt"),
      interrupted: value("interrupted"),
    })
    // A turn is recorded once it is over, so a copy sent again (after a restart) is the same turn.
    .onConflictDoNothing(),
);

/** What an outbox entry holds: a transcript line, bare (as entries were before turns existed), or `{turn}`. */
type OutboxEntry = { turn: TurnRecord } | TranscriptLine;

type LineRow = {
  seq: number;
  role: TranscriptLine["role"];
  text: string;
  provider: ProviderName;
  interrupted: number;
  item_id: string | null;
  at: number;
};

const LINE_COLUMNS = "seq, role, text, provider, interrupted, item_id, at";
const toLine = (row: LineRow): TranscriptLine => ({
  seq: row.seq,
  role: row.role,
  text: row.text,
  provider: row.provider,
  interrupted: row.interrupted === 1,
  itemId: row.item_id,
  at: row.at,
});

const lineWrite = (scope: TenantScope, sessionId: string, line: TranscriptLine) =>
  scope.bound(upsertLine, {
    id: `${sessionId}:${line.seq}`,
    sessionId,
    seq: line.seq,
    role: line.role,
    text: line.text,
    provider: line.provider,
    interrupted: line.interrupted,
    itemId: line.itemId,
    occurredAt: line.at,
  });

const turnWrite = (scope: TenantScope, sessionId: string, turn: TurnRecord) =>
  scope.bound(insertTurn, {
    id: `${sessionId}:${turn.providerFirstAudioAt}:${turn.itemId}`,
    sessionId,
    provider: turn.provider,
    itemId: turn.itemId,
    callerStoppedAt: turn.callerStoppedAt,
    providerFirstAudioAt: turn.providerFirstAudioAt,
    firstFrameSentAt: turn.firstFrameSentAt,
    firstMarkHeardAt: turn.firstMarkHeardAt,
    interrupted: turn.interrupted,
  });

export const TRANSCRIPT_TABLES: PartTables = {
  names: ["transcript_lines", "transcript_outbox"],
  ddl: `CREATE TABLE IF NOT EXISTS transcript_lines (
          seq INTEGER PRIMARY KEY, role TEXT NOT NULL, text TEXT NOT NULL, provider TEXT NOT NULL,
          interrupted INTEGER NOT NULL DEFAULT 0, item_id TEXT, at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS transcript_lines_item_idx ON transcript_lines (item_id, seq);
        CREATE TABLE IF NOT EXISTS transcript_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)`,
};

/** Values one statement may bind on an object's SQLite (as on D1). */
const MAX_BOUND_VALUES = 100;

/** A save's rows in as few statements as the bound allows: each statement is a call into SQLite. */
function insertRows(sql: SqlStorage, insert: string, rows: readonly (readonly SqlStorageValue[])[]): void {
  if (rows.length === 0) return;
  const row = `(${rows[0]!.map(() => "?").join(", ")})`;
  const perStatement = Math.max(1, Math.floor(MAX_BOUND_VALUES / rows[0]!.length));
  for (let start = 0; start < rows.length; start += perStatement) {
    const chunk = rows.slice(start, start + perStatement);
    sql.exec(`${insert} ${chunk.map(() => row).join(", ")}`, ...chunk.flat());
  }
}

export class TranscriptLog {
  private drainChain: Promise<DrainResult> = Promise.resolve("drained");
  private lastSeq: number;
  /** The highest seq written to storage: unsaved lines above it are new, those below it changed. */
  private storedThrough: number;
  /** Lines appended or changed since the last flush, by seq (their latest state): not yet in storage. */
  private readonly unsaved = new Map<number, TranscriptLine>();
  /** Copies queued for D1 since the last flush, in order (a line changed twice is queued twice). */
  private readonly queued: TranscriptLine[] = [];
  /** Finished turns since the last flush, for the outbox. */
  private readonly queuedTurns: TurnRecord[] = [];
  /** Outbox entries up to this id are in D1; their deletion rides on the next flush's commit. */
  private ackedThrough = 0;
  /** Outbox entries written so far (by `save`): a drain knows whether any came while it waited for D1. */
  private outboxWrites = 0;
  /** The outbox may hold entries D1 has not accepted (unknown after a restart, so true until a drain says so). */
  private unsent: boolean;
  /** Lines up to this seq are trimmed from storage: a save deletes only once the kept window moved past it. */
  private trimmedThrough = 0;
  /** The session named in this log's lines (known from the first flush). */
  private logFor: { tenantId?: string; sessionId?: string } = {};
  private readonly backlog = new BacklogWatch(() => this.log());

  /** `empty`: the object has stored nothing yet (session-tables.ts): no line to number after, nothing unsent. */
  constructor(
    private readonly sql: SqlStorage,
    empty = false,
  ) {
    this.lastSeq = empty ? 0 : (sql.exec<{ seq: number | null }>("SELECT MAX(seq) AS seq FROM transcript_lines").one().seq ?? 0);
    this.storedThrough = this.lastSeq;
    this.unsent = !empty;
  }

  /** In memory until the next flush: never a storage write. */
  append(line: Omit<TranscriptLine, "seq">): TranscriptLine {
    const stored: TranscriptLine = {
      seq: ++this.lastSeq,
      role: line.role,
      text: line.text.length > MAX_TEXT_CHARS ? line.text.slice(0, MAX_TEXT_CHARS) : line.text,
      provider: line.provider,
      interrupted: line.interrupted,
      itemId: line.itemId,
      at: line.at,
    };
    this.unsaved.set(stored.seq, stored);
    this.queued.push({ ...stored });
    return stored;
  }

  /** Marks the latest line of the item interrupted (in memory until the next flush); null when there is none. */
  markInterrupted(itemId: string): TranscriptLine | null {
    const line = this.latestOf(itemId);
    if (!line) return null;
    if (line.interrupted) return line;
    line.interrupted = true;
    this.unsaved.set(line.seq, line);
    this.queued.push({ ...line });
    return line;
  }

  /** A finished agent turn's timings: in memory until the next flush, never a storage write. */
  recordTurn(turn: TurnRecord): void {
    this.queuedTurns.push(turn);
  }

  recent(limit: number): TranscriptLine[] {
    if (!(limit > 0)) return [];
    // Nothing stored yet (a call's start: the voice session's first dial): the unsaved lines are all there is.
    const stored =
      this.storedThrough === 0
        ? []
        : this.sql
            .exec<LineRow>(`SELECT ${LINE_COLUMNS} FROM transcript_lines ORDER BY seq DESC LIMIT ?`, Math.floor(limit))
            .toArray()
            .map(toLine);
    const bySeq = new Map(stored.map((line) => [line.seq, line]));
    for (const line of this.unsaved.values()) bySeq.set(line.seq, { ...line });
    const kept = [...bySeq.values()].filter((line) => line.seq > this.lastSeq - MAX_LINES_KEPT);
    return kept.sort((a, b) => a.seq - b.seq).slice(-Math.floor(limit));
  }

  /** What the caller, the agent and a supervisor said, oldest first, of the lines kept (what an analysis reads). */
  conversation(): AnalysisLine[] {
    return this.recent(MAX_LINES_KEPT).flatMap(({ role, text, interrupted }) => (role === "system" ? [] : [{ role, text, interrupted }]));
  }

  /** Lines the object holds (the latest MAX_LINES_KEPT at most), written or not. */
  count(): number {
    const stored = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM transcript_lines").one().n;
    let fresh = 0;
    for (const seq of this.unsaved.keys()) if (seq > this.storedThrough) fresh++;
    return Math.min(MAX_LINES_KEPT, stored + fresh);
  }

  /** Whether a flush has anything to do, without a query: lines or turns queued, or outbox entries D1 has not accepted. */
  hasWork(): boolean {
    return this.queued.length > 0 || this.queuedTurns.length > 0 || this.unsent;
  }

  /** Queued copies (lines and turns) not yet accepted by D1 (in memory, or in the outbox). */
  pendingCount(): number {
    const queued = this.queued.length + this.queuedTurns.length;
    // Drained since the last write to the outbox: nothing in it is pending, and the gauges' count needs no query.
    if (!this.unsent) return queued;
    return queued + this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM transcript_outbox WHERE id > ?", this.ackedThrough).one().n;
  }

  private latestOf(itemId: string): TranscriptLine | null {
    let latest: TranscriptLine | null = null;
    for (const line of this.unsaved.values()) if (line.itemId === itemId && (!latest || line.seq > latest.seq)) latest = line;
    const row = this.sql
      .exec<LineRow>(`SELECT ${LINE_COLUMNS} FROM transcript_lines WHERE item_id = ? ORDER BY seq DESC LIMIT 1`, itemId)
      .toArray()[0];
    if (row && (!latest || row.seq > latest.seq)) latest = this.unsaved.get(row.seq) ?? toLine(row);
    return latest;
  }

  /** Everything changed since the last flush, in one commit (no await in here); D1 is left to `flush`. */
  save(): void {
    if (this.queued.length === 0 && this.queuedTurns.length === 0 && this.ackedThrough === 0) return;
    if (this.ackedThrough > 0) this.sql.exec("DELETE FROM transcript_outbox WHERE id <= ?", this.ackedThrough);
    this.ackedThrough = 0;
    const lines = [...this.unsaved.values()].map((line) => [
      line.seq,
      line.role,
      line.text,
      line.provider,
      line.interrupted ? 1 : 0,
      line.itemId,
      line.at,
    ]);
    insertRows(this.sql, `INSERT OR REPLACE INTO transcript_lines (${LINE_COLUMNS}) VALUES`, lines);
    const entries = [...this.queued.map((line) => JSON.stringify(line)), ...this.queuedTurns.map((turn) => JSON.stringify({ turn }))];
    insertRows(
      this.sql,
      "INSERT INTO transcript_outbox (body) VALUES",
      entries.map((body) => [body]),
    );
    this.outboxWrites += entries.length;
    if (entries.length > 0) this.unsent = true;
    // The newest lines stay; D1 has (or, through the outbox, will have) the older ones.
    const keepAfter = this.lastSeq - MAX_LINES_KEPT;
    if (this.unsaved.size > 0 && keepAfter > this.trimmedThrough) {
      this.sql.exec("DELETE FROM transcript_lines WHERE seq <= ?", keepAfter);
      this.trimmedThrough = keepAfter;
    }
    this.storedThrough = this.lastSeq;
    this.unsaved.clear();
    this.queued.length = 0;
    this.queuedTurns.length = 0;
  }

  /**
   * Writes what changed since the last flush to storage (one commit), then drains the outbox to D1 in batches of
   * ≤ 50 lines (at most DRAIN_BATCHES_PER_WAKE of them), compiled once and bound to the tenant (upsert by id, so a
   * re-queued line updates interrupted). Resolves "drained" when the outbox is empty, "more" at the batch bound,
   * "failed" if D1 failed (the outbox is kept: D1 gets every line later). Never throws. One flush at a time: a call
   * made while one runs starts after it. `writes`: the object's shared batch (a scope of the tenant if absent).
   */
  flush(env: Env, tenantId: string, sessionId: string, writes?: StatementRunner): Promise<DrainResult> {
    this.drainChain = this.drainChain.then(() => this.drain(env, tenantId, sessionId, writes));
    return this.drainChain;
  }

  private async drain(env: Env, tenantId: string, sessionId: string, writes?: StatementRunner): Promise<DrainResult> {
    this.logFor = { tenantId, sessionId };
    try {
      this.save();
      const scope = tenantScopeFor(env, tenantId);
      for (let batch = 0; batch < DRAIN_BATCHES_PER_WAKE; batch++) {
        const pending = this.sql
          .exec<{ id: number; body: string }>(
            "SELECT id, body FROM transcript_outbox WHERE id > ? ORDER BY id LIMIT ?",
            this.ackedThrough,
            FLUSH_BATCH,
          )
          .toArray()
          .map((row) => ({ id: row.id, entry: JSON.parse(row.body) as OutboxEntry }));
        if (pending.length === 0) return this.drained();
        const writesBefore = this.outboxWrites;
        // One statement per entry: the same line may be queued twice in one batch (appended, then interrupted).
        await (writes ?? scope).run(
          pending.map(({ entry }) => ("turn" in entry ? turnWrite(scope, sessionId, entry.turn) : lineWrite(scope, sessionId, entry))),
        );
        // Accepted: deleted with the next flush's commit, not in a commit of its own. Entries queued while D1 was
        // writing have higher ids and stay for the next round.
        this.ackedThrough = pending.at(-1)!.id;
        // A short batch took all there was, unless more was written meanwhile: no query to find the outbox empty.
        if (pending.length < FLUSH_BATCH && this.outboxWrites === writesBefore) return this.drained();
      }
      return "more";
    } catch (error) {
      const pending = this.safePendingCount();
      if (pending !== null) this.backlog.observe("transcript", pending);
      this.log().warn("transcript.d1_sync_deferred", { error, pending });
      return "failed";
    }
  }

  private drained(): DrainResult {
    this.unsent = false;
    this.backlog.observe("transcript", 0);
    return "drained";
  }

  private log() {
    return createLogger({ correlationId: "unknown", ...this.logFor });
  }

  private safePendingCount(): number | null {
    try {
      return this.pendingCount();
    } catch {
      return null;
    }
  }
}
