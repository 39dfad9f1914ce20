import { and, eq, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { SQLiteColumn, SQLiteTable, SQLiteUpdateSetSource } from "drizzle-orm/sqlite-core";
import { type Database, database } from "./client.ts";
import type { Bindable, CompiledWrite } from "./compiled-write.ts";

/** A table that holds one tenant's rows. */
export type TenantTable = SQLiteTable & { tenantId: SQLiteColumn };

type InsertRow<T extends TenantTable> = Omit<T["$inferInsert"], "tenantId">;

/**
 * All reads and writes of tenant data go through a scope bound to one tenant: the tenant condition is added
 * here, once, so a handler cannot forget it. A row of another tenant is simply not found.
 */
export class TenantScope {
  constructor(
    private readonly db: Database,
    readonly tenantId: string,
  ) {}

  /** `tenant_id = <this tenant>` AND every given condition. */
  where<T extends TenantTable>(table: T, ...conditions: (SQL | undefined)[]): SQL {
    return and(eq(table.tenantId, this.tenantId), ...conditions) as SQL;
  }

  select<T extends TenantTable>(table: T, ...conditions: (SQL | undefined)[]) {
    return this.db
      .select()
      .from(table as SQLiteTable)
      .where(this.where(table, ...conditions))
      .$dynamic();
  }

  insert<T extends TenantTable>(table: T, rows: InsertRow<T> | InsertRow<T>[]) {
    const list = (Array.isArray(rows) ? rows : [rows]).map((row) => ({ ...row, tenantId: this.tenantId }));
    return this.db.insert(table).values(list as T["$inferInsert"][]);
  }

  update<T extends TenantTable>(table: T, set: SQLiteUpdateSetSource<T>, ...conditions: (SQL | undefined)[]) {
    return this.db
      .update(table)
      .set(set)
      .where(this.where(table, ...conditions));
  }

  delete<T extends TenantTable>(table: T, ...conditions: (SQL | undefined)[]) {
    return this.db.delete(table).where(this.where(table, ...conditions));
  }

  /** A compiled write bound to this tenant and these values (see compiled-write.ts), for `run`. */
  bound<Name extends string>(write: CompiledWrite<Name>, values: Record<Name, Bindable>): D1PreparedStatement {
    return write.bind(this.db.$client, this.tenantId, values);
  }

  /** Runs bound compiled writes as one D1 transaction: all of them or none. */
  async run(statements: D1PreparedStatement[]): Promise<void> {
    await this.db.$client.batch(statements);
  }

  /** Runs the statements as one D1 transaction: all of them or none. */
  batch<U extends BatchItem<"sqlite">, Q extends Readonly<[U, ...U[]]>>(statements: Q) {
    return this.db.batch(statements);
  }
}

/** The scope for code that learns its tenant from its own state (the call's object, cron) rather than a request. */
export function tenantScopeFor(env: Env, tenantId: string): TenantScope {
  return new TenantScope(database(env.DB), tenantId);
}
