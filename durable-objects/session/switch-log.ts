import { providerSwitches, type SwitchReason } from "../../workers/shared/db/schema.ts";
import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import { BacklogWatch, type DrainResult } from "../call/outbox-backlog.ts";
import type { PartTables } from "../session-tables.ts";

/**
 * Every provider switch of the session, kept in the object's storage (what `switch-status` and `switch-history`
 * answer from while the session lives) and written to D1 `provider_switches` (the durable record). A D1 outage
 * leaves the entry unsynced; the next flush (the object's alarm) writes it. Entries are upserted by id.
 */
export interface SwitchEntry {
  id: string;
  fromProvider: ProviderName;
  toProvider: ProviderName;
  reason: SwitchReason;
  outcome: "succeeded" | "failed";
  error: string | null;
  messagesCarried: number;
  startedAt: number;
  durationMs: number;
}

const MAX_ENTRIES_KEPT = 200;
const FLUSH_BATCH = 50;

export const SWITCH_TABLES: PartTables = {
  names: ["provider_switches"],
  ddl: "CREATE TABLE IF NOT EXISTS provider_switches (id TEXT PRIMARY KEY, body TEXT NOT NULL, synced INTEGER NOT NULL DEFAULT 0, at INTEGER NOT NULL)",
};

export class SwitchLog {
  private readonly backlog: BacklogWatch;
  /** Entries recorded so far, and how many were when a flush last left none unsynced: the count without a query. */
  private recorded = 0;
  private drainedAt: number | null = null;

  /** `empty`: the object has stored nothing yet (session-tables.ts), so nothing is unsynced. */
  constructor(
    private readonly sql: SqlStorage,
    log: () => Logger,
    empty = false,
  ) {
    this.backlog = new BacklogWatch(log);
    if (empty) this.drainedAt = 0;
  }

  record(entry: SwitchEntry): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO provider_switches (id, body, synced, at) VALUES (?, ?, 0, ?)",
      entry.id,
      JSON.stringify(entry),
      entry.startedAt,
    );
    this.recorded++;
    this.sql.exec(
      "DELETE FROM provider_switches WHERE synced = 1 AND id NOT IN (SELECT id FROM provider_switches ORDER BY at DESC LIMIT ?)",
      MAX_ENTRIES_KEPT,
    );
  }

  /** Oldest first. */
  entries(): SwitchEntry[] {
    return this.sql
      .exec<{ body: string }>("SELECT body FROM provider_switches ORDER BY at, id")
      .toArray()
      .map((row) => JSON.parse(row.body) as SwitchEntry);
  }

  /** Entries D1 has not accepted yet. */
  pendingCount(): number {
    if (this.drainedAt === this.recorded) return 0;
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM provider_switches WHERE synced = 0").one().n;
  }

  /**
   * Writes the oldest unsynced entries to D1, a batch at a time ("more" when entries remain past it); "failed" when
   * D1 failed (they stay unsynced, counted). Never throws.
   */
  async flush(env: Env, tenantId: string, sessionId: string): Promise<DrainResult> {
    const pending = this.sql
      .exec<{ body: string }>("SELECT body FROM provider_switches WHERE synced = 0 ORDER BY at, id LIMIT ?", FLUSH_BATCH)
      .toArray();
    if (pending.length === 0) {
      this.drainedAt = this.recorded;
      return "drained";
    }
    const recordedBefore = this.recorded;
    const entries = pending.map((row) => JSON.parse(row.body) as SwitchEntry);
    try {
      const scope = tenantScopeFor(env, tenantId);
      const [first, ...rest] = entries.map((entry) =>
        scope.insert(providerSwitches, { ...entry, sessionId }).onConflictDoUpdate({
          target: providerSwitches.id,
          set: { outcome: entry.outcome, error: entry.error, durationMs: entry.durationMs },
        }),
      );
      await scope.batch([first!, ...rest]);
    } catch {
      this.backlog.observe("switches", this.pendingCount());
      return "failed";
    }
    for (const entry of entries) this.sql.exec("UPDATE provider_switches SET synced = 1 WHERE id = ?", entry.id);
    const result = pending.length === FLUSH_BATCH ? "more" : "drained";
    if (result === "drained" && this.recorded === recordedBefore) this.drainedAt = recordedBefore;
    this.backlog.observe("switches", result === "more" ? this.pendingCount() : 0);
    return result;
  }
}
