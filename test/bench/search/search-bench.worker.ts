/**
 * The customer search benchmark's worker (test/bench/search.bench.ts starts it through wrangler, on a local D1 the
 * project's migrations built): `POST /seed` writes generated customers in batched multi-row inserts (the index is
 * filled by its triggers, as in production), `GET /search` runs the real `searchCustomers`, `GET /floor` the raw FTS
 * MATCH alone, for comparison. Bench-only: no auth, not deployed.
 */
import { searchCustomers } from "../../../workers/business/customer-search.ts";
import { phoneticKey } from "../../../workers/business/phonetic.ts";
import { tenantScopeOn } from "../../../workers/shared/db/tenant-scope.ts";
import { customerAt } from "./search-data.ts";

interface BenchEnv {
  DB: D1Database;
}

const ROWS_PER_INSERT = 8; // 12 columns × 8 rows stays under D1's 100 bound parameters a statement

export default {
  async fetch(request: Request, env: BenchEnv): Promise<Response> {
    const url = new URL(request.url);
    const tenant = url.searchParams.get("tenant") ?? "";
    if (url.pathname === "/seed") {
      const from = Number(url.searchParams.get("from"));
      const count = Number(url.searchParams.get("count"));
      if (from === 0)
        await env.DB.prepare("INSERT OR IGNORE INTO tenants (id, name, created_at) VALUES (?, 'Bench', 0)").bind(tenant).run();
      const statements: D1PreparedStatement[] = [];
      for (let start = from; start < from + count; start += ROWS_PER_INSERT) {
        const values: unknown[] = [];
        const end = Math.min(start + ROWS_PER_INSERT, from + count);
        for (let i = start; i < end; i++) {
          const c = customerAt(i);
          values.push(`${tenant}-${i}`, tenant, c.name, c.nickname, c.phone, c.email, null, null, 0, phoneticKey(c.name, c.nickname), i, i);
        }
        const placeholders = Array.from({ length: end - start }, () => "(?,?,?,?,?,?,?,?,?,?,?,?)").join(",");
        statements.push(
          env.DB.prepare(
            `INSERT INTO customers (id, tenant_id, name, nickname, phone, email, language, notes, balance, phonetic, created_at, updated_at) VALUES ${placeholders}`,
          ).bind(...values),
        );
      }
      await env.DB.batch(statements);
      // What the index holds (its docsize table has a row per indexed customer), so a seeding that fell short shows.
      const indexed = await env.DB.prepare("SELECT count(*) AS n FROM customer_search_docsize").first<number>("n");
      return Response.json({ indexed });
    }
    const q = url.searchParams.get("q") ?? "";
    if (url.pathname === "/search") return Response.json({ found: (await searchCustomers(tenantScopeOn(env.DB, tenant), q)).length });
    if (url.pathname === "/floor") {
      // The least a search can cost here: one phrase of the query's first word through the index, no join, no re-rank.
      const word = q.match(/[\p{L}\d]{3,}/u)?.[0] ?? "xyz";
      const { results } = await env.DB.prepare("SELECT rowid FROM customer_search WHERE customer_search MATCH ? LIMIT 200")
        .bind(`"${word}"`)
        .all();
      return Response.json({ found: results.length });
    }
    return new Response("not found", { status: 404 });
  },
};
