import { z } from "@hono/zod-openapi";
import { and, asc, eq, isNull } from "drizzle-orm";
import { jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { mintApiKey } from "../identity/api-keys.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { creatorOf } from "../shared/db/principal-standing.ts";
import { apiKeys, ROLES } from "../shared/db/schema.ts";
import { notFound } from "../shared/errors.ts";

const apiKeySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    createdAt: z.string(),
    lastUsedAt: z.string().nullable(),
    revoked: z.boolean(),
  })
  .openapi("ApiKey");
const createdKeySchema = apiKeySchema.extend({ key: z.string().describe("Shown once; store it now") }).openapi("CreatedApiKey");
const idParam = z.object({
  id: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .openapi({ param: { name: "id", in: "path" } }),
});

type ApiKeyRow = typeof apiKeys.$inferSelect;
const present = (row: ApiKeyRow): z.infer<typeof apiKeySchema> => ({
  id: row.id,
  name: row.name,
  role: row.role,
  createdAt: new Date(row.createdAt).toISOString(),
  lastUsedAt: row.lastUsedAt === null ? null : new Date(row.lastUsedAt).toISOString(),
  revoked: row.revokedAt !== null,
});

const createRoute = protectedRoute("api_keys:manage", {
  method: "post",
  path: "/api/v1/api-keys",
  tags: ["api keys"],
  summary: "Create a tenant-scoped API key with a role; the key is returned once",
  request: jsonBody(z.strictObject({ name: z.string().min(1).max(100), role: z.enum(ROLES) })),
  responses: { 201: jsonResponse(createdKeySchema, "Created") },
});

const listRoute = protectedRoute("api_keys:manage", {
  method: "get",
  path: "/api/v1/api-keys",
  tags: ["api keys"],
  summary: "List the tenant's API keys (never their secrets)",
  responses: { 200: jsonResponse(z.object({ items: z.array(apiKeySchema) }), "Keys") },
});

const revokeRoute = protectedRoute("api_keys:manage", {
  method: "delete",
  path: "/api/v1/api-keys/{id}",
  tags: ["api keys"],
  summary: "Revoke an API key",
  request: { params: idParam },
  responses: { 204: { description: "Revoked" }, ...notFoundResponse },
});

export const apiKeyRoutes = publicRouter()
  .openapi(createRoute, async (c) => {
    const { name, role } = c.req.valid("json");
    const scope = c.get("scope");
    const principal = c.get("principal");
    const minted = await mintApiKey();
    const row = {
      id: minted.id,
      name,
      role,
      secretHash: minted.secretHash,
      createdBy: creatorOf(principal),
      createdAt: Date.now(),
    };
    await scope.batch([
      scope.insert(apiKeys, row),
      auditFromRequest(c, {
        action: "api_key.create",
        targetType: "api_key",
        targetId: minted.id,
        outcome: "success",
        details: { role, name },
      }),
    ]);
    const created = present({ ...row, tenantId: scope.tenantId, lastUsedAt: null, revokedAt: null });
    return c.json({ ...created, key: minted.key }, 201);
  })
  .openapi(listRoute, async (c) => {
    const rows = (await c.get("scope").select(apiKeys).orderBy(asc(apiKeys.createdAt))) as ApiKeyRow[];
    return c.json({ items: rows.map(present) }, 200);
  })
  .openapi(revokeRoute, async (c) => {
    const { id } = c.req.valid("param");
    const scope = c.get("scope");
    const revoked = await scope
      .update(apiKeys, { revokedAt: Date.now() }, and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
      .returning({ id: apiKeys.id });
    if (revoked.length === 0) {
      const [existing] = await scope.select(apiKeys, eq(apiKeys.id, id));
      if (!existing) throw notFound("API key");
      return c.body(null, 204);
    }
    await auditFromRequest(c, { action: "api_key.revoke", targetType: "api_key", targetId: id, outcome: "success" });
    return c.body(null, 204);
  });
