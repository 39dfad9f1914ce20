/** Tables one part of a session's object owns: their names and the statements that create them. */
export interface PartTables {
  names: readonly string[];
  ddl: string;
}

/**
 * Creates every part's tables in one statement and says whether the object has stored anything in them yet.
 *
 * One statement rather than one per table: a call's object is new for every call, and each statement is a call into
 * SQLite on the object's thread (locally also a span in wrangler's trace store) — a dozen of them at every call's
 * setup, in the voice webhook's answer. An object that has stored nothing is a new session: its parts start empty
 * without reading their tables (test/bench/FINDINGS.md).
 */
export function openTables(sql: SqlStorage, parts: readonly PartTables[]): { empty: boolean } {
  const ddl = parts.map((part) => part.ddl.trim().replace(/;$/, "")).join(";\n");
  const anyRow = parts.flatMap((part) => part.names.map((name) => `EXISTS (SELECT 1 FROM ${name})`)).join(" OR ");
  const { stored } = sql.exec<{ stored: number }>(`${ddl};\nSELECT ${anyRow} AS stored`).one();
  return { empty: stored === 0 };
}
