import { database } from "./client.ts";

/** What runs a part's bound D1 writes as one transaction: a tenant scope, or the object's shared batch. */
export interface StatementRunner {
  run(statements: D1PreparedStatement[]): Promise<void>;
}

interface Waiting {
  statements: D1PreparedStatement[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * A call object's D1 writes (statements its parts bound to their tenant), sent at once, except when its owner knows
 * several parts start their drains together: a call's end drains its ledger and its transcript in the same moment,
 * and that was two transactions on the database every call shares, each a round trip and a commit on the isolate the
 * calls still streaming share. `gather(n)` sends the next n runs as one batch (those that came, if fewer come before
 * the next task). A batch that fails is sent again part by part, so no part's statement holds back another's writes.
 */
export class SharedD1Batch implements StatementRunner {
  private gathering = 0;
  private waiting: Waiting[] = [];
  private readonly db: D1Database;

  constructor(env: Env) {
    // The one timed handle (client.ts): a call's ledger and transcript syncs are D1 round trips like any other.
    this.db = database(env.DB).$client;
  }

  run(statements: D1PreparedStatement[]): Promise<void> {
    if (this.gathering === 0) return this.db.batch(statements).then(() => undefined);
    return new Promise((resolve, reject) => {
      if (this.waiting.push({ statements, resolve, reject }) >= this.gathering) void this.send();
    });
  }

  /** The next `parts` runs go as one batch; whatever has come by the next task goes then (a part had nothing to send). */
  gather(parts: number): void {
    this.gathering = parts;
    setTimeout(() => {
      if (this.gathering > 0) void this.send();
    }, 0);
  }

  private async send(): Promise<void> {
    const group = this.waiting;
    this.waiting = [];
    this.gathering = 0;
    if (group.length > 1) {
      try {
        await this.db.batch(group.flatMap((part) => part.statements));
        for (const part of group) part.resolve();
        return;
      } catch {
        // Each part alone below: the one that fails again fails alone.
      }
    }
    await Promise.all(
      group.map((part) =>
        this.db.batch(part.statements).then(
          () => part.resolve(),
          (error: unknown) => part.reject(error),
        ),
      ),
    );
  }
}
