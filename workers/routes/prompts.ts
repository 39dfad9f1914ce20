import { z } from "@hono/zod-openapi";
import { asc, desc, eq, sql } from "drizzle-orm";
import type { Context } from "hono";
import type { AppEnv } from "../http/context.ts";
import { errorResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { forgetNumber } from "../shared/db/directory.ts";
import { creatorOf } from "../shared/db/principal-standing.ts";
import { promptsWithCurrentVersion, TOOL_NAMES } from "../shared/db/prompts.ts";
import { phoneNumbers, prompts, promptVersions } from "../shared/db/schema.ts";
import { notFound } from "../shared/errors.ts";

/**
 * Versioned agent prompts. A version is never changed: a new one is appended (and becomes current), a rollback moves
 * the prompt's pointer back to an earlier one. Sessions resolve the current version when they start and keep it, so
 * either move affects new calls only.
 */
const versionFields = {
  instructions: z.string().trim().min(1).max(8_000).describe("the agent's instructions (system prompt)"),
  voice: z.string().trim().min(1).max(64).optional().describe("the provider voice to speak with; absent: the provider's default"),
  tools: z
    .array(z.enum(TOOL_NAMES))
    .max(TOOL_NAMES.length)
    .refine((names) => new Set(names).size === names.length, { error: "names a tool twice" })
    .optional()
    .describe("the tools the agent may use; absent: all of them, empty: none"),
};

const versionSchema = z
  .object({
    version: z.number().int(),
    instructions: z.string(),
    voice: z.string().nullable(),
    tools: z.array(z.string()).nullable(),
    createdAt: z.string(),
  })
  .openapi("PromptVersion");

const promptSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    currentVersion: z.number().int(),
    current: versionSchema,
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Prompt");

const promptDetailSchema = promptSchema
  .extend({ versions: z.array(versionSchema).describe("every version, newest first") })
  .openapi("PromptDetail");

type PromptRow = typeof prompts.$inferSelect;
type VersionRow = typeof promptVersions.$inferSelect;
const presentVersion = (row: VersionRow): z.infer<typeof versionSchema> => ({
  version: row.version,
  instructions: row.instructions,
  voice: row.voice,
  tools: row.tools,
  createdAt: new Date(row.createdAt).toISOString(),
});
const present = (row: PromptRow, current: VersionRow): z.infer<typeof promptSchema> => ({
  id: row.id,
  name: row.name,
  currentVersion: row.currentVersion,
  current: presentVersion(current),
  createdAt: new Date(row.createdAt).toISOString(),
  updatedAt: new Date(row.updatedAt).toISOString(),
});
const idParam = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) });

const createRoute = protectedRoute("prompts:write", {
  method: "post",
  path: "/api/v1/prompts",
  tags: ["prompts"],
  summary: "Create a prompt; its first version is current",
  request: jsonBody(z.strictObject({ name: z.string().trim().min(1).max(200), ...versionFields })),
  responses: { 201: jsonResponse(promptSchema, "Created") },
});

const listRoute = protectedRoute("prompts:read", {
  method: "get",
  path: "/api/v1/prompts",
  tags: ["prompts"],
  summary: "The tenant's prompts with their current versions, by name",
  responses: { 200: jsonResponse(z.object({ items: z.array(promptSchema) }), "Prompts") },
});

const getRoute = protectedRoute("prompts:read", {
  method: "get",
  path: "/api/v1/prompts/{id}",
  tags: ["prompts"],
  summary: "One prompt with every version",
  request: { params: idParam },
  responses: { 200: jsonResponse(promptDetailSchema, "The prompt"), ...notFoundResponse },
});

const versionRoute = protectedRoute("prompts:write", {
  method: "post",
  path: "/api/v1/prompts/{id}/versions",
  tags: ["prompts"],
  summary: "Add a version; it becomes current for sessions that start from now on",
  request: { params: idParam, ...jsonBody(z.strictObject(versionFields)) },
  responses: { 201: jsonResponse(promptSchema, "The prompt with its new current version"), ...notFoundResponse },
});

const rollbackRoute = protectedRoute("prompts:write", {
  method: "post",
  path: "/api/v1/prompts/{id}/rollback",
  tags: ["prompts"],
  summary: "Make an earlier version current again; running sessions keep the version they started with",
  request: { params: idParam, ...jsonBody(z.strictObject({ version: z.number().int().min(1) })) },
  responses: {
    200: jsonResponse(promptSchema, "The prompt with the version made current"),
    404: errorResponse("No such prompt, or the prompt has no such version"),
  },
});

type Ctx = Context<AppEnv>;

async function load(c: Ctx, id: string): Promise<{ prompt: PromptRow; current: VersionRow }> {
  const [row] = await promptsWithCurrentVersion(c.env, c.get("scope"), eq(prompts.id, id)).limit(1);
  if (!row) throw notFound("Prompt");
  return { prompt: row.prompts, current: row.prompt_versions };
}

/** Numbers cache their prompt's resolved version with their route (directory.ts): drop them so new calls re-read it. */
async function forgetNumbersOf(c: Ctx, promptId: string): Promise<void> {
  const numbers = await c.get("scope").selectFields(phoneNumbers, { e164: phoneNumbers.e164 }, eq(phoneNumbers.promptId, promptId));
  await Promise.all(numbers.map((number) => forgetNumber(c.env, c.get("log"), number.e164)));
}

export const promptRoutes = publicRouter()
  .openapi(createRoute, async (c) => {
    const { name, ...body } = c.req.valid("json");
    const scope = c.get("scope");
    const now = Date.now();
    const prompt = { id: crypto.randomUUID(), name, currentVersion: 1, createdAt: now, updatedAt: now };
    const version = {
      promptId: prompt.id,
      version: 1,
      instructions: body.instructions,
      voice: body.voice ?? null,
      tools: body.tools ?? null,
      createdBy: creatorOf(c.get("principal")),
      createdAt: now,
    };
    await scope.batch([
      scope.insert(prompts, prompt),
      scope.insert(promptVersions, version),
      auditFromRequest(c, {
        action: "prompt.create",
        targetType: "prompt",
        targetId: prompt.id,
        outcome: "success",
        details: { version: 1 },
      }),
    ]);
    return c.json(present({ ...prompt, tenantId: scope.tenantId }, { ...version, tenantId: scope.tenantId }), 201);
  })
  .openapi(listRoute, async (c) => {
    const rows = await promptsWithCurrentVersion(c.env, c.get("scope")).orderBy(asc(prompts.name), asc(prompts.id));
    return c.json({ items: rows.map((row) => present(row.prompts, row.prompt_versions)) }, 200);
  })
  .openapi(getRoute, async (c) => {
    const { id } = c.req.valid("param");
    const { prompt, current } = await load(c, id);
    const versions = (await c
      .get("scope")
      .select(promptVersions, eq(promptVersions.promptId, id))
      .orderBy(desc(promptVersions.version))) as VersionRow[];
    return c.json({ ...present(prompt, current), versions: versions.map(presentVersion) }, 200);
  })
  .openapi(versionRoute, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const scope = c.get("scope");
    const { prompt } = await load(c, id);
    // The number is computed in the statement, and both writes are one transaction: two versions added at once get
    // distinct numbers (or the second fails on the key), never the same number twice.
    const next = sql`(SELECT COALESCE(MAX(${promptVersions.version}), 0) + 1 FROM ${promptVersions} WHERE ${promptVersions.promptId} = ${id})`;
    const latest = sql`(SELECT MAX(${promptVersions.version}) FROM ${promptVersions} WHERE ${promptVersions.promptId} = ${id})`;
    const now = Date.now();
    await scope.batch([
      scope.insert(promptVersions, {
        promptId: id,
        version: next,
        instructions: body.instructions,
        voice: body.voice ?? null,
        tools: body.tools ?? null,
        createdBy: creatorOf(c.get("principal")),
        createdAt: now,
      }),
      scope.update(prompts, { currentVersion: latest, updatedAt: now }, eq(prompts.id, id)),
      auditFromRequest(c, {
        action: "prompt.version",
        targetType: "prompt",
        targetId: id,
        outcome: "success",
        details: { fromVersion: prompt.currentVersion },
      }),
    ]);
    await forgetNumbersOf(c, id);
    const after = await load(c, id);
    return c.json(present(after.prompt, after.current), 201);
  })
  .openapi(rollbackRoute, async (c) => {
    const { id } = c.req.valid("param");
    const { version } = c.req.valid("json");
    const scope = c.get("scope");
    const { prompt } = await load(c, id);
    const [target] = (await scope.select(
      promptVersions,
      eq(promptVersions.promptId, id),
      eq(promptVersions.version, version),
    )) as VersionRow[];
    if (!target) throw notFound("Prompt version");
    const now = Date.now();
    await scope.batch([
      scope.update(prompts, { currentVersion: version, updatedAt: now }, eq(prompts.id, id)),
      auditFromRequest(c, {
        action: "prompt.rollback",
        targetType: "prompt",
        targetId: id,
        outcome: "success",
        details: { fromVersion: prompt.currentVersion, toVersion: version },
      }),
    ]);
    await forgetNumbersOf(c, id);
    return c.json(present({ ...prompt, currentVersion: version, updatedAt: now }, target), 200);
  });
