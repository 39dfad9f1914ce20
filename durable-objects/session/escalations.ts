import { sessionEscalations } from "../../workers/shared/db/schema.ts";
import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import {
  type ConversationSignal,
  type EscalationDecision,
  EscalationEvaluator,
  type EscalationRule,
  type EscalationSettings,
} from "../../workers/shared/escalation.ts";
import type { EscalationEvent } from "../../workers/shared/live-protocol.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import type { DrainResult } from "../call/outbox-backlog.ts";
import type { PartTables } from "../session-tables.ts";
import type { SessionIdentity } from "./caller-channel.ts";

/**
 * The session's escalations: the tenant's rules (learned with its other settings when the conversation starts)
 * applied to the conversation's caller turns and tool outcomes, per turn and never per frame. A rule that fires is
 * recorded in the object's storage (one small write, at most once per rule per session), told to every supervisor
 * watching, written to D1 `session_escalations` (retried from the alarm while D1 fails), and — when the rules name a
 * number and the session is a phone call in progress — the call is transferred through the call-control path.
 *
 * The evaluator's counters are not stored: after a restart they are rebuilt from the stored transcript and tool log
 * (`resume`), and the rules already fired come from storage, so nothing fires twice.
 */

export type TransferOutcome = NonNullable<EscalationEvent["transfer"]>;

export interface EscalationsDeps {
  sql: SqlStorage;
  env: Env;
  /** The tenant's rules as last learned; null while unknown, or when the tenant has none. */
  rules: () => EscalationSettings | null;
  session: () => SessionIdentity | null;
  /** The stored conversation, oldest first, for rebuilding the counters after a restart. */
  history: () => ConversationSignal[];
  publish: (event: EscalationEvent) => void;
  /** Transfers a phone call in progress; null when there is none to transfer (a web session, a call not in progress). */
  transfer: (to: string) => Promise<TransferOutcome | null>;
  /** A D1 write that did not finish: the owner wakes the object to try again. */
  retry: (result: DrainResult) => Promise<void>;
  waitUntil: (task: Promise<unknown>) => void;
  log: () => Logger;
}

interface StoredEscalation {
  rule: EscalationRule;
  reason: string;
  at: number;
  transfer: TransferOutcome | null;
}

export const ESCALATION_TABLES: PartTables = {
  names: ["escalations"],
  ddl: "CREATE TABLE IF NOT EXISTS escalations (rule TEXT PRIMARY KEY, body TEXT NOT NULL, synced INTEGER NOT NULL DEFAULT 0)",
};

export class Escalations {
  private evaluator: EscalationEvaluator | null = null;
  /** Two rules firing on one turn ask for one transfer: the second sees the first under way and leaves it. */
  private transferring = false;
  /** False while the session has stored no escalation (a new object's, until one fires): nothing to read or sync. */
  private holdsEntries: boolean;

  /** `empty`: the object has stored nothing yet (session-tables.ts). */
  constructor(
    private readonly deps: EscalationsDeps,
    empty = false,
  ) {
    this.holdsEntries = !empty;
  }

  /**
   * The conversation starts (or resumes after a restart): the counters are rebuilt from what is stored, before any new
   * turn arrives, so none is counted twice.
   */
  resume(): void {
    if (this.evaluator) return;
    this.evaluator = new EscalationEvaluator(this.entries().map((entry) => entry.rule));
    for (const signal of this.deps.history()) this.evaluator.observe(null, signal);
  }

  /** A caller turn or a tool outcome (off the audio path). */
  observe(signal: ConversationSignal): void {
    if (!this.evaluator) this.resume();
    for (const decision of this.evaluator!.observe(this.deps.rules(), signal)) this.deps.waitUntil(this.fire(decision));
  }

  private async fire(decision: EscalationDecision): Promise<void> {
    const entry: StoredEscalation = { ...decision, at: Date.now(), transfer: null };
    this.store(entry);
    // The rule's name only: the reason may carry a keyword the caller said.
    this.deps.log().info("escalation.fired", { rule: decision.rule });
    const to = this.deps.rules()?.transferTo;
    if (to && !this.transferring) {
      this.transferring = true;
      entry.transfer = await this.transfer(to).finally(() => {
        this.transferring = false;
      });
      if (entry.transfer) this.store(entry);
    }
    this.deps.publish({
      type: "escalation",
      rule: entry.rule,
      reason: entry.reason,
      at: entry.at,
      ...(entry.transfer && { transfer: entry.transfer }),
    });
    await this.deps.retry(await this.flush());
  }

  /** A transfer that fails is the event's to say; the call goes on with the agent. */
  private async transfer(to: string): Promise<TransferOutcome | null> {
    try {
      return await this.deps.transfer(to);
    } catch (error) {
      this.deps.log().warn("escalation.transfer_failed", { error });
      return null;
    }
  }

  private store(entry: StoredEscalation): void {
    this.holdsEntries = true;
    this.deps.sql.exec("INSERT OR REPLACE INTO escalations (rule, body, synced) VALUES (?, ?, 0)", entry.rule, JSON.stringify(entry));
  }

  /** Why the session escalated, oldest first (what its analysis says of it). */
  reasons(): Array<{ reason: string }> {
    return this.entries().map((entry) => ({ reason: entry.reason }));
  }

  /** Oldest first. */
  private entries(): StoredEscalation[] {
    if (!this.holdsEntries) return [];
    return this.deps.sql
      .exec<{ body: string }>("SELECT body FROM escalations")
      .toArray()
      .map((row) => JSON.parse(row.body) as StoredEscalation)
      .sort((a, b) => a.at - b.at);
  }

  /** Writes the escalations D1 has not accepted (at most three); "failed" leaves them for the next try. Never throws. */
  async flush(): Promise<DrainResult> {
    const session = this.deps.session();
    if (!this.holdsEntries) return "drained";
    const rows = this.deps.sql.exec<{ body: string }>("SELECT body FROM escalations WHERE synced = 0").toArray();
    const pending = rows.map((row) => JSON.parse(row.body) as StoredEscalation);
    if (!session || pending.length === 0) return "drained";
    try {
      const scope = tenantScopeFor(this.deps.env, session.tenantId);
      const [first, ...rest] = pending.map((entry) => {
        const transfer = {
          transferTo: entry.transfer?.to ?? null,
          transferOk: entry.transfer?.ok ?? null,
          transferError: entry.transfer?.error ?? null,
        };
        return scope
          .insert(sessionEscalations, { sessionId: session.sessionId, rule: entry.rule, reason: entry.reason, at: entry.at, ...transfer })
          .onConflictDoUpdate({ target: [sessionEscalations.sessionId, sessionEscalations.rule], set: transfer });
      });
      await scope.batch([first!, ...rest]);
    } catch (error) {
      this.deps.log().warn("escalation.sync_failed", { error });
      return "failed";
    }
    // Only what was written: an entry changed meanwhile (its transfer's outcome) stays for the next flush.
    for (const row of rows) this.deps.sql.exec("UPDATE escalations SET synced = 1 WHERE body = ?", row.body);
    return "drained";
  }
}
