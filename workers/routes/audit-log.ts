import { z } from "@hono/zod-openapi";
import { and, desc, eq, lt, or } from "drizzle-orm";
import { jsonResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditLog } from "../shared/db/schema.ts";
import { badRequest } from "../shared/errors.ts";
import { decodeCursor, encodeCursor, pageQuery } from "./pagination.ts";

const entrySchema = z
  .object({
    id: z.string(),
    actorType: z.string(),
    actorId: z.string().nullable(),
    action: z.string(),
    targetType: z.string().nullable(),
    targetId: z.string().nullable(),
    outcome: z.string(),
    ip: z.string().nullable(),
    correlationId: z.string().nullable(),
    details: z.record(z.string(), z.unknown()).nullable(),
    createdAt: z.string(),
  })
  .openapi("AuditEntry");

const listRoute = protectedRoute("audit:read", {
  method: "get",
  path: "/api/v1/audit-log",
  tags: ["audit"],
  summary: "The tenant's security audit trail, newest first",
  request: { query: pageQuery },
  responses: { 200: jsonResponse(z.object({ items: z.array(entrySchema), nextCursor: z.string().nullable() }), "A page of entries") },
});

export const auditLogRoutes = publicRouter().openapi(listRoute, async (c) => {
  const { limit, cursor } = c.req.valid("query");
  const before = decodeCursor(cursor);
  if (cursor && (!before || typeof before[0] !== "number" || typeof before[1] !== "string")) {
    throw badRequest("invalid_cursor", "cursor is not valid");
  }
  const olderThanCursor = before
    ? or(lt(auditLog.createdAt, Number(before[0])), and(eq(auditLog.createdAt, Number(before[0])), lt(auditLog.id, String(before[1]))))
    : undefined;
  const rows = (await c
    .get("scope")
    .select(auditLog, olderThanCursor)
    .orderBy(desc(auditLog.createdAt), desc(auditLog.id))
    .limit(limit + 1)) as Array<typeof auditLog.$inferSelect>;
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return c.json(
    {
      items: page.map(({ tenantId: _tenant, createdAt, ...entry }) => ({ ...entry, createdAt: new Date(createdAt).toISOString() })),
      nextCursor: rows.length > limit && last ? encodeCursor([last.createdAt, last.id]) : null,
    },
    200,
  );
});
