import { is, Param, Placeholder, sql } from "drizzle-orm";
import { type Database, database } from "./client.ts";

/** What D1 binds: SQLite's storage classes (booleans and dates are mapped by the column's encoder first). */
export type Bindable = string | number | boolean | null;

/** One bound parameter: a named value to fill in (through its column's encoder) or a constant of the statement. */
type Slot = { name: string; encode: (value: unknown) => unknown } | { constant: unknown };

const TENANT = "tenantId";
const same = (value: unknown) => value;

/**
 * A tenant's write that drizzle compiles once — every value a named placeholder, the tenant id one of them — and D1
 * binds per use. Written by hand because the load bench measured drizzle building the call object's upserts anew
 * on every sync as most of what those syncs cost the object (test/bench/FINDINGS.md, item 6); the SQL is still drizzle's.
 * Compiling refuses a statement that does not bind the tenant, so a compiled write is tenant-scoped like any other.
 */
export class CompiledWrite<Name extends string> {
  private compiled: { sql: string; slots: Slot[] } | null = null;

  /** `build` gets a placeholder per value name (`tenant` for the tenant id) and returns a drizzle statement. */
  constructor(
    private readonly build: (
      db: Database,
      value: (name: Name) => Placeholder<Name>,
      tenant: Placeholder<typeof TENANT>,
    ) => { toSQL(): { sql: string; params: unknown[] } },
  ) {}

  /** The statement bound to this tenant and these values, for `env.DB.batch` or `.run()`. */
  bind(binding: D1Database, tenantId: string, values: Record<Name, Bindable>): D1PreparedStatement {
    this.compiled ??= this.compile(binding);
    const { sql: text, slots } = this.compiled;
    const params = slots.map((slot) =>
      "constant" in slot ? slot.constant : slot.encode(slot.name === TENANT ? tenantId : values[slot.name as Name]),
    );
    return binding.prepare(text).bind(...params);
  }

  private compile(binding: D1Database): { sql: string; slots: Slot[] } {
    const query = this.build(database(binding), (name) => sql.placeholder(name), sql.placeholder(TENANT)).toSQL();
    const slots = query.params.map((param): Slot => {
      if (is(param, Placeholder)) return { name: param.name as string, encode: same };
      if (is(param, Param) && is(param.value, Placeholder)) {
        const encoder = param.encoder;
        return { name: param.value.name as string, encode: (value) => encoder.mapToDriverValue(value) };
      }
      return { constant: param };
    });
    if (!slots.some((slot) => "name" in slot && slot.name === TENANT))
      throw new Error(`a compiled write must bind the tenant: ${query.sql}`);
    return { sql: query.sql, slots };
  }
}
