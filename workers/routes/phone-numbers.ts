import { z } from "@hono/zod-openapi";
import { asc, eq } from "drizzle-orm";
import { assertNumberOnAccount } from "../carriers/number-ownership.ts";
import { conflictResponse, errorResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { numberInUse } from "../identity/accounts.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { forgetNumber } from "../shared/db/directory.ts";
import { requirePrompt } from "../shared/db/prompts.ts";
import { CARRIERS, PROVIDER_NAMES, phoneNumbers, RECORDING_MODES, TELNYX_CODECS } from "../shared/db/schema.ts";
import { uniqueViolation } from "../shared/db/unique-violation.ts";
import { badRequest, conflict, notFound } from "../shared/errors.ts";

const e164 = z.string().regex(/^\+[1-9]\d{6,14}$/, { error: "must be an E.164 number like +14155550100" });

const phoneNumberSchema = z
  .object({
    id: z.string(),
    e164: z.string(),
    carrier: z.enum(CARRIERS),
    provider: z.enum(PROVIDER_NAMES).nullable(),
    instructions: z.string().nullable(),
    promptId: z.string().nullable().describe("the prompt calls to this number run (its current version); wins over instructions"),
    codec: z.enum(TELNYX_CODECS),
    recording: z.enum(RECORDING_MODES).nullable().describe("whether calls to this number are recorded; null: the tenant's setting"),
    createdAt: z.string(),
  })
  .openapi("PhoneNumber");

type Row = typeof phoneNumbers.$inferSelect;
const present = ({ tenantId: _tenant, createdAt, ...row }: Row): z.infer<typeof phoneNumberSchema> => ({
  ...row,
  createdAt: new Date(createdAt).toISOString(),
});
const idParam = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) });

const createRoute = protectedRoute("phone_numbers:write", {
  method: "post",
  path: "/api/v1/phone-numbers",
  tags: ["phone numbers"],
  summary: "Attach a number to the tenant; inbound calls to it are answered for this tenant",
  description:
    "The number must be on the platform's account at the carrier (asked of the carrier's API, the answer cached): " +
    "422 `number_not_owned` when it is not, 503 `carrier_unavailable` when the carrier cannot say.",
  request: jsonBody(
    z.strictObject({
      e164,
      carrier: z.enum(CARRIERS),
      provider: z.enum(PROVIDER_NAMES).optional(),
      instructions: z.string().max(8000).optional(),
      promptId: z.uuid().optional().describe("a prompt of the tenant's (POST /api/v1/prompts)"),
      codec: z.enum(TELNYX_CODECS).optional(),
      recording: z.enum(RECORDING_MODES).nullable().optional().describe("over the tenant's `recording`; absent or null: the tenant's"),
    }),
  ),
  responses: {
    201: jsonResponse(phoneNumberSchema, "Created"),
    ...conflictResponse,
    422: errorResponse("The number is not on the platform's account at the carrier, or promptId names no prompt of the tenant's"),
    503: errorResponse("The carrier could not confirm the number (or is not configured)"),
  },
});

const listRoute = protectedRoute("phone_numbers:read", {
  method: "get",
  path: "/api/v1/phone-numbers",
  tags: ["phone numbers"],
  summary: "The tenant's numbers",
  responses: { 200: jsonResponse(z.object({ items: z.array(phoneNumberSchema) }), "Numbers") },
});

const patchRoute = protectedRoute("phone_numbers:write", {
  method: "patch",
  path: "/api/v1/phone-numbers/{id}",
  tags: ["phone numbers"],
  summary: "Change what calls to a number run (provider, instructions, prompt, codec, recording); null clears a field",
  request: {
    params: idParam,
    ...jsonBody(
      z.strictObject({
        provider: z.enum(PROVIDER_NAMES).nullable().optional(),
        instructions: z.string().max(8000).nullable().optional(),
        promptId: z.uuid().nullable().optional(),
        codec: z.enum(TELNYX_CODECS).optional(),
        recording: z.enum(RECORDING_MODES).nullable().optional(),
      }),
    ),
  },
  responses: {
    200: jsonResponse(phoneNumberSchema, "The number after the change"),
    ...notFoundResponse,
    422: errorResponse("promptId names no prompt of the tenant's"),
  },
});

const deleteRoute = protectedRoute("phone_numbers:write", {
  method: "delete",
  path: "/api/v1/phone-numbers/{id}",
  tags: ["phone numbers"],
  summary: "Detach a number",
  request: { params: idParam },
  responses: { 204: { description: "Removed" }, ...notFoundResponse },
});

export const phoneNumberRoutes = publicRouter()
  .openapi(createRoute, async (c) => {
    const body = c.req.valid("json");
    const scope = c.get("scope");
    // Numbers are unique across tenants: a call to a number must resolve to exactly one tenant.
    if (await numberInUse(c.env, body.e164)) throw conflict("number_taken", "This number is already attached");
    if (body.promptId) await requirePrompt(c.env, scope, body.promptId);
    await assertNumberOnAccount(c.env, c.get("log"), body.carrier, body.e164);
    const row = {
      id: crypto.randomUUID(),
      e164: body.e164,
      carrier: body.carrier,
      provider: body.provider ?? null,
      instructions: body.instructions ?? null,
      promptId: body.promptId ?? null,
      codec: body.codec ?? ("PCMU" as const),
      recording: body.recording ?? null,
      createdAt: Date.now(),
    };
    try {
      await scope.batch([
        scope.insert(phoneNumbers, row),
        auditFromRequest(c, {
          action: "phone_number.create",
          targetType: "phone_number",
          targetId: row.id,
          outcome: "success",
          details: { e164: row.e164, carrier: row.carrier, promptId: row.promptId, recording: row.recording },
        }),
      ]);
    } catch (error) {
      // Attached meanwhile by another request (the check above and this insert are not one step): the same answer.
      if (uniqueViolation(error, "phone_numbers.e164")) throw conflict("number_taken", "This number is already attached");
      throw error;
    }
    await forgetNumber(c.env, c.get("log"), row.e164);
    return c.json(present({ ...row, tenantId: scope.tenantId }), 201);
  })
  .openapi(listRoute, async (c) => {
    const rows = (await c.get("scope").select(phoneNumbers).orderBy(asc(phoneNumbers.e164))) as Row[];
    return c.json({ items: rows.map(present) }, 200);
  })
  .openapi(patchRoute, async (c) => {
    const { id } = c.req.valid("param");
    const change = c.req.valid("json");
    if (Object.keys(change).length === 0) throw badRequest("empty_change", "Give at least one field to change");
    const scope = c.get("scope");
    const [row] = (await scope.select(phoneNumbers, eq(phoneNumbers.id, id))) as Row[];
    if (!row) throw notFound("Phone number");
    if (change.promptId) await requirePrompt(c.env, scope, change.promptId);
    await scope.batch([
      scope.update(phoneNumbers, change, eq(phoneNumbers.id, id)),
      auditFromRequest(c, {
        action: "phone_number.update",
        targetType: "phone_number",
        targetId: id,
        outcome: "success",
        // Which fields changed, and the prompt named; instructions are the tenant's script, not audit material.
        details: { e164: row.e164, fields: Object.keys(change), promptId: change.promptId, recording: change.recording },
      }),
    ]);
    await forgetNumber(c.env, c.get("log"), row.e164);
    return c.json(present({ ...row, ...change }), 200);
  })
  .openapi(deleteRoute, async (c) => {
    const { id } = c.req.valid("param");
    const scope = c.get("scope");
    const [row] = (await scope.select(phoneNumbers, eq(phoneNumbers.id, id))) as Row[];
    if (!row) throw notFound("Phone number");
    await scope.batch([
      scope.delete(phoneNumbers, eq(phoneNumbers.id, id)),
      auditFromRequest(c, {
        action: "phone_number.delete",
        targetType: "phone_number",
        targetId: id,
        outcome: "success",
        details: { e164: row.e164 },
      }),
    ]);
    await forgetNumber(c.env, c.get("log"), row.e164);
    return c.body(null, 204);
  });
