import { providerSwitches, type SwitchReason } from "../../workers/shared/db/schema.ts";
import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";

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

export class SwitchLog {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(
      "CREATE TABLE IF NOT EXISTS provider_switches (id TEXT PRIMARY KEY, body TEXT NOT NULL, synced INTEGER NOT NULL DEFAULT 0, at INTEGER NOT NULL)",
    );
  }

  record(entry: SwitchEntry): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO provider_switches (id, body, synced, at) VALUES (?, ?, 0, ?)",
      entry.id,
      JSON.stringify(entry),
      entry.startedAt,
    );
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

  /** Writes unsynced entries to D1; false when D1 failed (they stay unsynced). Never throws. */
  async flush(env: Env, tenantId: string, sessionId: string): Promise<boolean> {
    const pending = this.sql.exec<{ body: string }>("SELECT body FROM provider_switches WHERE synced = 0 ORDER BY at").toArray();
    if (pending.length === 0) return true;
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
      return false;
    }
    for (const entry of entries) this.sql.exec("UPDATE provider_switches SET synced = 1 WHERE id = ?", entry.id);
    return true;
  }
}
