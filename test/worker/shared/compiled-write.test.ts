import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { CompiledWrite } from "../../../workers/shared/db/compiled-write.ts";
import { transcriptLines } from "../../../workers/shared/db/schema.ts";
import { tenantScopeFor } from "../../../workers/shared/db/tenant-scope.ts";
import { createTenant } from "../support/identity.ts";

/** The call object's D1 writes are compiled once and bound per use; they must stay as tenant-scoped as the rest. */
const upsertLine = new CompiledWrite<"id" | "sessionId" | "text" | "interrupted">((db, value, tenant) =>
  db
    .insert(transcriptLines)
    .values({
      id: value("id"),
      tenantId: tenant,
      sessionId: value("sessionId"),
      seq: 1,
      role: "caller",
      text: value("text"),
      provider: "local",
      interrupted: value("interrupted"),
      occurredAt: 1,
    })
    .onConflictDoUpdate({ target: transcriptLines.id, set: { text: sql`excluded.text` } }),
);

describe("compiled writes", () => {
  it("write the bound tenant's row, through the column's encoder, and only that tenant sees it", async () => {
    const [tenantA, tenantB] = [await createTenant(), await createTenant()];
    const scopeA = tenantScopeFor(env, tenantA);
    const id = crypto.randomUUID();
    await scopeA.run([scopeA.bound(upsertLine, { id, sessionId: "s-1", text: "first", interrupted: true })]);
    // The same compiled statement, bound again: an upsert of the same row.
    await scopeA.run([scopeA.bound(upsertLine, { id, sessionId: "s-1", text: "second", interrupted: true })]);

    const [own] = await scopeA.select(transcriptLines, sql`${transcriptLines.id} = ${id}`);
    expect(own).toMatchObject({ tenantId: tenantA, text: "second", interrupted: true });
    expect(await tenantScopeFor(env, tenantB).select(transcriptLines, sql`${transcriptLines.id} = ${id}`)).toEqual([]);
    const raw = await env.DB.prepare("SELECT interrupted FROM transcript_lines WHERE id = ?").bind(id).first<{ interrupted: number }>();
    expect(raw?.interrupted).toBe(1);
  });

  it("refuse, when first bound, a statement that does not bind the tenant", async () => {
    const tenant = await createTenant();
    const unscoped = new CompiledWrite<"id">((db, value) =>
      db
        .update(transcriptLines)
        .set({ interrupted: true })
        .where(sql`${transcriptLines.id} = ${value("id")}`),
    );
    expect(() => tenantScopeFor(env, tenant).bound(unscoped, { id: "x" })).toThrow(/must bind the tenant/);
  });
});
