import { z } from "@hono/zod-openapi";
import { asc, eq, gt, isNull, ne } from "drizzle-orm";
import { conflictResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { emailInUse } from "../identity/accounts.ts";
import { hashPassword } from "../identity/passwords.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { cutoffNow, revokeAllStatements } from "../identity/revocation.ts";
import { creatorOf } from "../shared/db/principal-standing.ts";
import { apiKeys, ROLES, users } from "../shared/db/schema.ts";
import { badRequest, conflict, notFound } from "../shared/errors.ts";
import { decodeCursor, encodeCursor, pageQuery } from "./pagination.ts";

const userSchema = z
  .object({
    id: z.string(),
    email: z.string(),
    role: z.enum(ROLES),
    disabled: z.boolean(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("User");

const idParam = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) });
const password = z.string().min(12).max(1024);

type UserRow = typeof users.$inferSelect;
const present = (row: UserRow): z.infer<typeof userSchema> => ({
  id: row.id,
  email: row.email,
  role: row.role,
  disabled: row.disabledAt !== null,
  createdAt: new Date(row.createdAt).toISOString(),
  updatedAt: new Date(row.updatedAt).toISOString(),
});

const createRoute = protectedRoute("users:write", {
  method: "post",
  path: "/api/v1/users",
  tags: ["users"],
  summary: "Add a user to the caller's tenant",
  request: jsonBody(z.strictObject({ email: z.email().max(254), password, role: z.enum(ROLES) })),
  responses: { 201: jsonResponse(userSchema, "Created"), ...conflictResponse },
});

const listRoute = protectedRoute("users:read", {
  method: "get",
  path: "/api/v1/users",
  tags: ["users"],
  summary: "List the tenant's users",
  request: { query: pageQuery },
  responses: { 200: jsonResponse(z.object({ items: z.array(userSchema), nextCursor: z.string().nullable() }), "A page of users") },
});

const getRoute = protectedRoute("users:read", {
  method: "get",
  path: "/api/v1/users/{id}",
  tags: ["users"],
  summary: "One user",
  request: { params: idParam },
  responses: { 200: jsonResponse(userSchema, "The user"), ...notFoundResponse },
});

const patchRoute = protectedRoute("users:write", {
  method: "patch",
  path: "/api/v1/users/{id}",
  tags: ["users"],
  summary: "Change a user's role, password or disabled flag (role changes are audited; tokens are revoked)",
  request: {
    params: idParam,
    ...jsonBody(z.strictObject({ role: z.enum(ROLES).optional(), password: password.optional(), disabled: z.boolean().optional() })),
  },
  responses: { 200: jsonResponse(userSchema, "Updated"), ...notFoundResponse, ...conflictResponse },
});

export const userRoutes = publicRouter()
  .openapi(createRoute, async (c) => {
    const body = c.req.valid("json");
    const scope = c.get("scope");
    const email = body.email.trim().toLowerCase();
    if (await emailInUse(c.env, email)) throw conflict("email_taken", "A user with this email already exists");
    const now = Date.now();
    const id = crypto.randomUUID();
    const row = { id, email, role: body.role, passwordHash: await hashPassword(body.password), createdAt: now, updatedAt: now };
    await scope.batch([
      scope.insert(users, row),
      auditFromRequest(c, { action: "user.create", targetType: "user", targetId: id, outcome: "success", details: { role: body.role } }),
    ]);
    return c.json(present({ ...row, tenantId: scope.tenantId, tokensValidAfter: 0, disabledAt: null }), 201);
  })
  .openapi(listRoute, async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const after = decodeCursor(cursor);
    if (cursor && (!after || typeof after[0] !== "string")) throw badRequest("invalid_cursor", "cursor is not valid");
    const rows = await c
      .get("scope")
      .select(users, after ? gt(users.id, String(after[0])) : undefined)
      .orderBy(asc(users.id))
      .limit(limit + 1);
    const page = rows.slice(0, limit) as UserRow[];
    const last = page.at(-1);
    return c.json({ items: page.map(present), nextCursor: rows.length > limit && last ? encodeCursor([last.id]) : null }, 200);
  })
  .openapi(getRoute, async (c) => {
    const [row] = (await c.get("scope").select(users, eq(users.id, c.req.valid("param").id))) as UserRow[];
    if (!row) throw notFound("User");
    return c.json(present(row), 200);
  })
  .openapi(patchRoute, async (c) => {
    const { id } = c.req.valid("param");
    const change = c.req.valid("json");
    if (change.role === undefined && change.password === undefined && change.disabled === undefined) {
      throw badRequest("empty_change", "Give at least one of role, password, disabled");
    }
    const scope = c.get("scope");
    const [user] = (await scope.select(users, eq(users.id, id))) as UserRow[];
    if (!user) throw notFound("User");

    const losesAdmin = user.role === "admin" && ((change.role !== undefined && change.role !== "admin") || change.disabled === true);
    if (losesAdmin) {
      const otherAdmins = await scope.select(users, eq(users.role, "admin"), isNull(users.disabledAt), ne(users.id, id)).limit(1);
      if (otherAdmins.length === 0) throw conflict("last_admin", "A tenant must keep at least one active admin");
    }

    const now = Date.now();
    const updated: UserRow = {
      ...user,
      role: change.role ?? user.role,
      disabledAt: change.disabled === undefined ? user.disabledAt : change.disabled ? (user.disabledAt ?? now) : null,
      passwordHash: change.password ? await hashPassword(change.password) : user.passwordHash,
      updatedAt: now,
    };
    // Any change of role, password or status ends the user's existing sessions: they carry the old facts.
    const cutoff = cutoffNow();
    await scope.batch([
      scope.update(
        users,
        { role: updated.role, disabledAt: updated.disabledAt, passwordHash: updated.passwordHash, updatedAt: now },
        eq(users.id, id),
      ),
      ...revokeAllStatements(scope, id, cutoff, "account_changed"),
      // A disabled user's keys would outlive them: they go with the account, in the same transaction.
      ...(change.disabled === true
        ? [scope.update(apiKeys, { revokedAt: now }, eq(apiKeys.createdBy, creatorOf({ kind: "user", id })), isNull(apiKeys.revokedAt))]
        : []),
      auditFromRequest(c, {
        targetType: "user",
        targetId: id,
        outcome: "success",
        action: change.role !== undefined && change.role !== user.role ? "user.role_change" : "user.update",
        details: {
          ...(change.role !== undefined ? { fromRole: user.role, toRole: updated.role } : {}),
          ...(change.disabled !== undefined ? { disabled: change.disabled } : {}),
          ...(change.password ? { passwordChanged: true } : {}),
        },
      }),
    ]);
    return c.json(present({ ...updated, tokensValidAfter: cutoff }), 200);
  });
