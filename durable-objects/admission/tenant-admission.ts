import { DurableObject } from "cloudflare:workers";
import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import { createLogger } from "../../workers/shared/logger.ts";
import { readVersionedSettings, type TenantSettings, type VersionedSettings } from "../../workers/shared/tenant-settings.ts";

/** A holder not heard of for this long is asked whether it still runs, when the tenant is at its limit. */
export const HOLDER_LEASE_MS = 60_000;
/** The most holders asked on one acquire (oldest checks first); the rest wait for a later one. */
const CHECK_BATCH = 10;
/**
 * How long the tenant's settings, read from D1, are trusted. A settings change is pushed here at once
 * (`setSettings`); the re-read only covers a push that was lost.
 */
export const SETTINGS_FRESH_MS = 30_000;

/** An admitted session also gets its tenant's settings, so its object need not read them from D1 before it answers. */
export type AdmissionDecision =
  | { admitted: true; active: number; settings: TenantSettings }
  | { admitted: false; active: number; limit: number }
  // The limit cannot be known: an answer, not an exception thrown across the RPC (the caller decides what to do).
  | { admitted: false; unchecked: "settings_unreadable" };

/**
 * One object per tenant (`idFromName(tenantId)`) holding the set of the tenant's live sessions: a session takes a
 * slot before it starts (`acquire`) and gives it back when it ends (`release`). The object runs one call at a time
 * between awaits, and the count and the insert happen with no await between them, so a burst of simultaneous
 * acquires for the last slot admits exactly one. Acquire is idempotent per session id: a carrier's retry of the same
 * call holds the slot it already holds.
 *
 * A release can be lost (the session's object could not reach this one and its retries ran out, or it was never
 * told): so a holder is a lease. When the tenant is at its limit, holders not checked for `HOLDER_LEASE_MS` are
 * asked (their own object answers whether the session still runs) and the ended ones are freed before the answer.
 *
 * The object also holds the tenant's settings (its `maxConcurrentSessions`, and for the admitted session's object
 * the masking, escalation and recording settings), so that a new call costs one round trip here and no D1 read
 * before it is answered: read from D1 on first need, re-read after `SETTINGS_FRESH_MS`, and replaced at once when an
 * admin changes them.
 */
export class TenantAdmission extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly log = createLogger({ component: "tenant_admission" });
  /** One round of holder checks at a time; acquires that find the tenant full meanwhile wait for it. */
  private checking: Promise<void> | null = null;
  private settings: (VersionedSettings & { readAt: number }) | null = null;
  /** One D1 read of the settings at a time; acquires arriving meanwhile wait for it. */
  private readingSettings: Promise<TenantSettings> | null = null;
  /** How many rows `holders` has: this object is its only writer, so it is counted once, then kept as rows change. */
  private held: number;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // One statement: the table, its index, and how many it holds (exec returns the last statement's rows).
    this.held = this.sql
      .exec<{ n: number }>(
        `CREATE TABLE IF NOT EXISTS holders (session_id TEXT PRIMARY KEY, acquired_at INTEGER NOT NULL, checked_at INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS holders_by_check ON holders (checked_at);
         SELECT count(*) AS n FROM holders`,
      )
      .one().n;
  }

  /**
   * Takes a slot for `sessionId` unless the tenant's limit (null: none) of sessions already hold one; `unchecked` when
   * the settings cannot be known (D1 unreachable on the first read, or the stored settings no longer parse).
   */
  async acquire(tenantId: string, sessionId: string): Promise<AdmissionDecision> {
    let settings: TenantSettings;
    try {
      settings = await this.currentSettings(tenantId);
    } catch (error) {
      this.log.warn("admission.settings_unreadable", { tenantId, error });
      return { admitted: false, unchecked: "settings_unreadable" };
    }
    const limit = settings.maxConcurrentSessions;
    // Under the limit, taking needs no lookup: the insert is a no-op for a session that already holds a slot.
    if (limit === null || this.held < limit || this.holds(sessionId)) return this.take(sessionId, settings);
    this.checking ??= this.freeEnded().finally(() => {
      this.checking = null;
    });
    await this.checking;
    // Decided only now, with no await between the count and the insert: whoever came first took what was freed.
    if (this.held < limit || this.holds(sessionId)) return this.take(sessionId, settings);
    return { admitted: false, active: this.held, limit };
  }

  /**
   * An admin changed the tenant's settings: they hold from the next acquire. Two changes made at once can be pushed
   * in either order, and a D1 read begun before a change can end after its push: the newest version held wins.
   */
  async setSettings(pushed: VersionedSettings): Promise<void> {
    this.keep(pushed);
  }

  private keep(copy: VersionedSettings): TenantSettings {
    const held = this.settings;
    if (held && held.version > copy.version) {
      held.readAt = Date.now();
      return held.settings;
    }
    this.settings = { ...copy, readAt: Date.now() };
    return copy.settings;
  }

  /** Gives the session's slot back; releasing a slot not held is a no-op (a retried release, a refused session). */
  async release(sessionId: string): Promise<{ active: number }> {
    this.held -= this.removed(sessionId);
    return { active: this.held };
  }

  private async currentSettings(tenantId: string): Promise<TenantSettings> {
    if (this.settings && Date.now() - this.settings.readAt < SETTINGS_FRESH_MS) return this.settings.settings;
    this.readingSettings ??= readVersionedSettings(tenantScopeFor(this.env, tenantId))
      .then((read) => this.keep(read))
      .catch((error: unknown) => {
        // Stale settings are better than none while D1 is away; never having read them is not knowing them.
        if (this.settings) return this.settings.settings;
        throw error;
      })
      .finally(() => {
        this.readingSettings = null;
      });
    return this.readingSettings;
  }

  private take(sessionId: string, settings: TenantSettings): AdmissionDecision {
    const now = Date.now();
    this.held += this.sql
      .exec("INSERT OR IGNORE INTO holders (session_id, acquired_at, checked_at) VALUES (?, ?, ?) RETURNING 1", sessionId, now, now)
      .toArray().length;
    return { admitted: true, active: this.held, settings };
  }

  /** 1 when the session held a slot (RETURNING says so; a cursor's rowsWritten would count index rows too). */
  private removed(sessionId: string): number {
    return this.sql.exec("DELETE FROM holders WHERE session_id = ? RETURNING 1", sessionId).toArray().length;
  }

  private holds(sessionId: string): boolean {
    return this.sql.exec("SELECT 1 FROM holders WHERE session_id = ?", sessionId).toArray().length > 0;
  }

  /** Asks the holders whose lease ran out whether their session still runs, and frees those that ended. */
  private async freeEnded(): Promise<void> {
    const now = Date.now();
    const due = this.sql
      .exec<{ session_id: string }>(
        "SELECT session_id FROM holders WHERE checked_at < ? ORDER BY checked_at LIMIT ?",
        now - HOLDER_LEASE_MS,
        CHECK_BATCH,
      )
      .toArray()
      .map((row) => row.session_id);
    if (due.length === 0) return;
    const states = await Promise.all(
      due.map((sessionId) =>
        this.env.CALL_SESSION.get(this.env.CALL_SESSION.idFromName(sessionId))
          .admissionState()
          .catch(() => "unreachable" as const),
      ),
    );
    const freed: string[] = [];
    due.forEach((sessionId, i) => {
      // A holder that cannot be asked keeps its slot (it may be live) and is asked again a lease later.
      if (states[i] === "ended") {
        this.held -= this.removed(sessionId);
        freed.push(sessionId);
      } else this.sql.exec("UPDATE holders SET checked_at = ? WHERE session_id = ?", now, sessionId);
    });
    if (freed.length > 0) this.log.warn("admission.leaked_slots_freed", { freed: freed.length, sessionIds: freed });
  }
}
