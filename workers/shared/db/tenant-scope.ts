import { and, eq, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { SelectedFields, SQLiteColumn, SQLiteTable, SQLiteUpdateSetSource } from "drizzle-orm/sqlite-core";
import { type Database, database } from "./client.ts";
import type { Bindable, CompiledWrite } from "./compiled-write.ts";

/** A table that holds one tenant's rows. */
export type TenantTable = SQLiteTable & { tenantId: SQLiteColumn };

/** A row without its tenant; a value may be SQL (a subquery the database computes in the same statement). */
type InsertRow<T extends TenantTable> = { [K in keyof Omit<T["$inferInsert"], "tenantId">]: T["$inferInsert"][K] | SQL };

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

  /** Chosen columns or expressions of the tenant's rows (a column list, or a subquery for another statement). */
  selectFields<T extends TenantTable, F extends SelectedFields>(table: T, fields: F, ...conditions: (SQL | undefined)[]) {
    return this.db
      .select(fields)
      .from(table as SQLiteTable)
      .where(this.where(table, ...conditions))
      .$dynamic();
  }

  /**
   * `INSERT INTO table SELECT …`: rows built from this tenant's rows of another table (`source`, from
   * `selectFields`, its fields in the table's column order), so a row is written only if its source row matches.
   */
  insertFrom<T extends TenantTable>(table: T, source: { getSQL(): SQL }) {
    return this.db.insert(table).select(source.getSQL());
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

  /**
   * The D1 binding under this scope, for the few statements drizzle cannot express (an FTS5 MATCH): such a statement
   * must bind `tenantId` itself, and its module's tests must show two tenants apart.
   */
  get d1(): D1Database {
    return this.db.$client;
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

/** The scope over a D1 binding, for the libraries both the Worker and the call objects use (the business engine). */
export function tenantScopeOn(binding: D1Database, tenantId: string): TenantScope {
  return new TenantScope(database(binding), tenantId);
}

/** The scope for code that learns its tenant from its own state (the call's object, cron) rather than a request. */
export function tenantScopeFor(env: Env, tenantId: string): TenantScope {
  return new TenantScope(database(env.DB), tenantId);
}
