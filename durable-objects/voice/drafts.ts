import type { InvoiceInput, PaymentInput } from "../../workers/business/engine.ts";
import type { ReminderInput } from "../../workers/business/reminders/reminders.ts";
import type { PartTables } from "../session-tables.ts";

/**
 * What the agent proposed and read back, before the caller said yes: a tool that moves money or sends a message
 * writes nothing, it leaves a draft here (the call's own SQLite) that `confirm_action` writes once. The draft holds
 * the resolved request (customer id, amounts in minor units), so what is written is exactly what the caller heard,
 * however the agent words its confirmation.
 */

/** Long enough to read a draft back and hear "yes"; a later yes is to something the caller may no longer recall. */
export const DRAFT_TTL_MS = 5 * 60_000;
/** A call that proposes this many drafts is not a shop conversation any more. */
const MAX_DRAFTS = 200;

export type DraftRequest =
  | { kind: "invoice"; request: InvoiceInput }
  | { kind: "payment"; request: PaymentInput }
  | { kind: "reminder"; request: ReminderInput };

export interface Draft {
  id: string;
  /** The draft's idempotency key in D1 (random, so no two calls' drafts share one). */
  key: string;
  request: DraftRequest;
}

export type DraftClaim =
  | { kind: "claimed"; draft: Draft }
  /** Confirmed before (a repeated confirmation): the first confirmation's answer. */
  | { kind: "done"; result: string }
  | { kind: "in_progress" }
  | { kind: "unknown" }
  | { kind: "expired" };

export const DRAFT_TABLES: PartTables = {
  names: ["tool_drafts"],
  ddl: `CREATE TABLE IF NOT EXISTS tool_drafts (id TEXT PRIMARY KEY, key TEXT NOT NULL, request TEXT NOT NULL,
        state TEXT NOT NULL, result TEXT, expires_at INTEGER NOT NULL)`,
};

export class DraftStore {
  /** Drafts being written by this instance; a stored "writing" not in here was left by an instance that died. */
  private readonly writing = new Set<string>();

  constructor(private readonly sql: SqlStorage) {}

  /**
   * A new draft; its id is short and sequential within the call ("D1", "D2", …) because the agent has to carry it
   * back verbatim, and drafts belong to this call alone. Null when the call has too many.
   */
  create(request: DraftRequest): string | null {
    const count = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tool_drafts").one().n;
    if (count >= MAX_DRAFTS) return null;
    const id = `D${count + 1}`;
    this.sql.exec(
      "INSERT INTO tool_drafts (id, key, request, state, expires_at) VALUES (?, ?, ?, 'open', ?)",
      id,
      crypto.randomUUID(),
      JSON.stringify(request),
      Date.now() + DRAFT_TTL_MS,
    );
    return id;
  }

  /**
   * Takes a draft for writing. Synchronous (no await between the read and the state change), so two confirmations
   * of one draft racing each other cannot both claim it. A draft whose writer died is claimed again: its write is
   * idempotent in D1 by the draft's key, so the retry finds the first write's answer rather than writing twice.
   */
  claim(draftId: string): DraftClaim {
    const row = this.sql
      .exec<{ id: string; key: string; request: string; state: string; result: string | null; expires_at: number }>(
        "SELECT id, key, request, state, result, expires_at FROM tool_drafts WHERE id = ?",
        draftId.trim().toUpperCase(),
      )
      .toArray()[0];
    if (!row) return { kind: "unknown" };
    if (row.state === "done") return { kind: "done", result: row.result ?? "" };
    if (this.writing.has(row.id)) return { kind: "in_progress" };
    if (row.state === "open" && row.expires_at <= Date.now()) return { kind: "expired" };
    this.writing.add(row.id);
    this.sql.exec("UPDATE tool_drafts SET state = 'writing' WHERE id = ?", row.id);
    return { kind: "claimed", draft: { id: row.id, key: row.key, request: JSON.parse(row.request) as DraftRequest } };
  }

  /** The write succeeded: later confirmations answer with this. */
  done(id: string, result: string): void {
    this.writing.delete(id);
    this.sql.exec("UPDATE tool_drafts SET state = 'done', result = ? WHERE id = ?", result, id);
  }

  /** The write failed (the engine's writes are all or nothing): the draft may be confirmed again while it lives. */
  release(id: string): void {
    this.writing.delete(id);
    this.sql.exec("UPDATE tool_drafts SET state = 'open' WHERE id = ?", id);
  }
}
