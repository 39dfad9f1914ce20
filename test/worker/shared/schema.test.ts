import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

/**
 * Tenant data must be partitioned: every table the migrations create carries `tenant_id` and an index that starts
 * with it, except the tenants table itself. A new table fails here until it follows the rule.
 */
const GLOBAL_TABLES = new Set(["tenants", "d1_migrations"]);

describe("schema", () => {
  it("every tenant-owned table has tenant_id with an index leading on it", async () => {
    const { results: tables } = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
    ).all<{ name: string }>();
    expect(tables.length).toBeGreaterThan(4);
    for (const { name } of tables) {
      if (GLOBAL_TABLES.has(name)) continue;
      const { results: columns } = await env.DB.prepare(`PRAGMA table_info(${name})`).all<{ name: string; notnull: number }>();
      const tenantColumn = columns.find((column) => column.name === "tenant_id");
      expect(tenantColumn, `${name}.tenant_id`).toBeDefined();
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
