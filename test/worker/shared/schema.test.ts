import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

/**
 * Tenant data must be partitioned: every table the migrations create carries `tenant_id` and an index that starts
 * with it, except the tenants table itself. A new table fails here until it follows the rule.
 * Virtual tables (the FTS5 customer search index) can have neither a NOT NULL constraint nor an index: they must
 * carry `tenant_id` as a column, which every query of them filters on. Their shadow tables (`<name>_data`, `_idx`,
 * `_content`, `_docsize`, `_config`) are SQLite's storage of the virtual table, read only through it; they are
 * exempt, but only under the name of a virtual table the migrations created.
 */
const GLOBAL_TABLES = new Set(["tenants", "d1_migrations"]);
const FTS5_SHADOWS = ["data", "idx", "content", "docsize", "config"];

describe("schema", () => {
  it("every tenant-owned table has tenant_id with an index leading on it", async () => {
    const { results: tables } = await env.DB.prepare(
      "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
    ).all<{ name: string; sql: string }>();
    expect(tables.length).toBeGreaterThan(4);
    const virtual = tables.filter((table) => /^CREATE VIRTUAL TABLE/i.test(table.sql)).map((table) => table.name);
    const shadows = new Set(virtual.flatMap((name) => FTS5_SHADOWS.map((suffix) => `${name}_${suffix}`)));
    for (const { name } of tables) {
      if (GLOBAL_TABLES.has(name) || shadows.has(name)) continue;
      const { results: columns } = await env.DB.prepare(`PRAGMA table_info(${name})`).all<{ name: string; notnull: number }>();
      const tenantColumn = columns.find((column) => column.name === "tenant_id");
      expect(tenantColumn, `${name}.tenant_id`).toBeDefined();
      if (virtual.includes(name)) continue;
      expect(tenantColumn!.notnull, `${name}.tenant_id NOT NULL`).toBe(1);
      const { results: indexes } = await env.DB.prepare(`PRAGMA index_list(${name})`).all<{ name: string }>();
      const leading = await Promise.all(
        indexes.map(
          async (index) =>
            (await env.DB.prepare(`PRAGMA index_info(${index.name})`).all<{ seqno: number; name: string }>()).results.find(
              (c) => c.seqno === 0,
            )?.name,
        ),
      );
      expect(leading, `${name} index on tenant_id`).toContain("tenant_id");
    }
  });
});
