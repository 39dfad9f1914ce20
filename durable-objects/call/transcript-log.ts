import { sql } from "drizzle-orm";
import type { ProviderName } from "../../workers/config/settings";
import { tenantScopeFor } from "../../workers/db/tenant-scope";
import { transcriptLines } from "../../workers/db/schema";
import { createLogger } from "../../workers/http/logger";
import { increment } from "../../workers/observability/counters";

/**
 * A session's transcript, in two tiers like the call's ledger: every line is written to the object's own SQLite
 * storage synchronously (the line and its outbox entry with no await between them, so they commit together), and
 * `flush` drains the outbox to D1 `transcript_lines` in batches, off the audio path. D1 keeps every line; the
 * object keeps the latest MAX_LINES_KEPT (enough to restore a provider's context after a switch or an eviction).
 *
 * The outbox holds a copy of each line as it was queued, so a line pruned from the object before D1 accepted it is
 * still delivered; a line that changes later (interrupted) is queued again and upserted by id.
 */
export interface TranscriptLine {
  seq: number;
  role: "caller" | "agent" | "system";
  text: string;
  provider: ProviderName;
  interrupted: boolean;
  itemId: string | null;
  at: number;
}

export const MAX_TEXT_CHARS = 4_000;
export const MAX_LINES_KEPT = 2_000;
const FLUSH_BATCH = 50;

type LineRow = { seq: number; role: TranscriptLine["role"]; text: string; provider: ProviderName; interrupted: number; item_id: string | null; at: number };

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

export class TranscriptLog {
  private drainChain: Promise<boolean> = Promise.resolve(true);

  constructor(private readonly sql: SqlStorage) {
    sql.exec(
      `CREATE TABLE IF NOT EXISTS transcript_lines (
         seq INTEGER PRIMARY KEY, role TEXT NOT NULL, text TEXT NOT NULL, provider TEXT NOT NULL,
         interrupted INTEGER NOT NULL DEFAULT 0, item_id TEXT, at INTEGER NOT NULL)`,
    );
    sql.exec(`CREATE INDEX IF NOT EXISTS transcript_lines_item_idx ON transcript_lines (item_id, seq)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS transcript_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)`);
  }

  append(line: Omit<TranscriptLine, "seq">): TranscriptLine {
    const last = this.sql.exec<{ seq: number | null }>("SELECT MAX(seq) AS seq FROM transcript_lines").one().seq ?? 0;
    const stored: TranscriptLine = {
      seq: last + 1,
      role: line.role,
      text: line.text.length > MAX_TEXT_CHARS ? line.text.slice(0, MAX_TEXT_CHARS) : line.text,
      provider: line.provider,
      interrupted: line.interrupted,
      itemId: line.itemId,
      at: line.at,
    };
    this.sql.exec(
      `INSERT INTO transcript_lines (${LINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      stored.seq, stored.role, stored.text, stored.provider, stored.interrupted ? 1 : 0, stored.itemId, stored.at,
    );
    this.enqueue(stored);
    // The newest lines stay; D1 has (or, through the outbox, will have) the older ones.
    this.sql.exec("DELETE FROM transcript_lines WHERE seq <= ?", stored.seq - MAX_LINES_KEPT);
    return stored;
  }

  markInterrupted(itemId: string): TranscriptLine | null {
    const row = this.sql
      .exec<LineRow>(`SELECT ${LINE_COLUMNS} FROM transcript_lines WHERE item_id = ? ORDER BY seq DESC LIMIT 1`, itemId)
      .toArray()[0];
    if (!row) return null;
    const line = toLine(row);
    if (line.interrupted) return line;
    line.interrupted = true;
    this.sql.exec("UPDATE transcript_lines SET interrupted = 1 WHERE seq = ?", line.seq);
    this.enqueue(line);
    return line;
  }

  recent(limit: number): TranscriptLine[] {
    if (!(limit > 0)) return [];
    return this.sql
      .exec<LineRow>(`SELECT * FROM (SELECT ${LINE_COLUMNS} FROM transcript_lines ORDER BY seq DESC LIMIT ?) ORDER BY seq ASC`, Math.floor(limit))
      .toArray()
      .map(toLine);
  }

  /** Lines held in the object's storage (the latest MAX_LINES_KEPT at most). */
  count(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM transcript_lines").one().n;
  }

  /** Outbox entries not yet accepted by D1. */
  pendingCount(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM transcript_outbox").one().n;
  }

  /**
   * Drains the outbox to D1 in batches of ≤ 50 lines through the tenant scope (upsert by id, so a re-queued line
   * updates interrupted). Resolves true when the outbox is empty, false if D1 failed (the outbox is kept; nothing
   * is lost). Never throws. One drain at a time: a call made while one runs starts after it.
   */
  flush(env: Env, tenantId: string, sessionId: string): Promise<boolean> {
    this.drainChain = this.drainChain.then(() => this.drain(env, tenantId, sessionId));
    return this.drainChain;
  }

  private enqueue(line: TranscriptLine): void {
    this.sql.exec("INSERT INTO transcript_outbox (body) VALUES (?)", JSON.stringify(line));
  }

  private async drain(env: Env, tenantId: string, sessionId: string): Promise<boolean> {
    let pending: Array<{ id: number; line: TranscriptLine }> = [];
    try {
      const scope = tenantScopeFor(env, tenantId);
      for (;;) {
        pending = this.sql
          .exec<{ id: number; body: string }>("SELECT id, body FROM transcript_outbox ORDER BY id LIMIT ?", FLUSH_BATCH)
          .toArray()
          .map((row) => ({ id: row.id, line: JSON.parse(row.body) as TranscriptLine }));
        if (pending.length === 0) return true;
        // One statement per line: D1 caps bound parameters per statement, and the same line may be queued twice
        // in one batch (appended, then interrupted), which a multi-row upsert cannot apply.
        const statements = pending.map(({ line }) =>
          scope
            .insert(transcriptLines, {
              id: `${sessionId}:${line.seq}`,
              sessionId,
              seq: line.seq,
              role: line.role,
              text: line.text,
              provider: line.provider,
              interrupted: line.interrupted,
              itemId: line.itemId,
              occurredAt: line.at,
            })
            // Interrupted only ever becomes true, whatever order two copies of a line arrive in.
            .onConflictDoUpdate({ target: transcriptLines.id, set: { interrupted: sql`max(${transcriptLines.interrupted}, excluded.interrupted)` } }),
        );
        await scope.batch(statements as [(typeof statements)[number], ...typeof statements]);
        // Entries queued while D1 was writing have higher ids and stay for the next round.
        this.sql.exec("DELETE FROM transcript_outbox WHERE id <= ?", pending.at(-1)!.id);
      }
    } catch (error) {
      increment("transcript_d1_sync_failures_total");
      createLogger({ correlationId: "unknown", tenantId, sessionId }).warn("transcript.d1_sync_deferred", {
        error,
        pending: this.safePendingCount(),
      });
      return false;
    }
  }

  private safePendingCount(): number | null {
    try {
      return this.pendingCount();
    } catch {
      return null;
    }
  }
}
