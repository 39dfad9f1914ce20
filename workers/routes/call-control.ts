import { z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import type { ControlResult } from "../../durable-objects/call/call-commands.ts";
import { placeOutboundCall } from "../carriers/outbound-call.ts";
import {
  concurrencyLimitResponse,
  conflictResponse,
  errorResponse,
  jsonBody,
  jsonResponse,
  notFoundResponse,
  protectedRoute,
} from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { CALL_STATUSES, CARRIERS, calls, MACHINE_DETECTION_MODES } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { AppError, conflict, notAdmitted, notFound } from "../shared/errors.ts";
import { callObject } from "../shared/session-ids.ts";
import { providerSchema } from "../shared/settings.ts";

/** A voicemail is read by text-to-speech in about a minute at most: longer is a mistake, not a message. */
const MAX_VOICEMAIL_CHARS = 1_000;

const e164 = z.string().regex(/^\+[1-9]\d{6,14}$/, { error: "must be an E.164 number like +14155550100" });
const carrierUnavailable = (message: string) => new AppError(502, "carrier_unavailable", message, "dependency");

const placedSchema = z
  .object({
    id: z.string(),
    sessionId: z.string(),
    carrier: z.enum(CARRIERS),
    status: z.enum(CALL_STATUSES),
    failover: z.object({ from: z.enum(CARRIERS), reason: z.string() }).nullable(),
  })
  .openapi("PlacedCall");

const placeRoute = protectedRoute("calls:create", {
  method: "post",
  path: "/api/v1/calls",
  tags: ["calls"],
  summary: "Place an outbound call; fails over to the other carrier when the chosen one's API is down",
  request: jsonBody(
    z.strictObject({
      to: e164,
      from: e164.optional(),
      carrier: z.enum(CARRIERS).optional(),
      provider: providerSchema.optional(),
      promptId: z.uuid().optional().describe("a prompt of the tenant's; absent: the calling number's prompt or instructions"),
      machineDetection: z
        .enum(MACHINE_DETECTION_MODES)
        .optional()
        .describe("answering-machine detection: hang up on a machine, or leave `voicemailMessage` after its beep; absent: none"),
      voicemailMessage: z
        .string()
        .trim()
        .min(1)
        .max(MAX_VOICEMAIL_CHARS)
        .optional()
        .describe('what a machine is told after its beep; required with `machineDetection: "voicemail"`, and only then'),
    }),
  ),
  responses: {
    201: jsonResponse(placedSchema, "Placed (the response names the carrier that took it)"),
    502: jsonResponse(z.unknown(), "No carrier could place the call"),
    503: jsonResponse(
      z.unknown(),
      "The tenant's concurrency limit could not be checked, or the platform is at capacity; nothing was dialled",
    ),
    ...concurrencyLimitResponse,
    ...conflictResponse,
    422: errorResponse("promptId names no prompt of the tenant's; voicemail without a message, or a message without voicemail"),
  },
});

/** The body's fields agree: a voicemail needs its message, and a message is only ever left in voicemail mode. */
function checkVoicemail(body: { machineDetection?: string; voicemailMessage?: string }): void {
  const voicemail = body.machineDetection === "voicemail";
  if (voicemail && body.voicemailMessage === undefined) {
    throw new AppError(422, "voicemail_message_required", 'machineDetection "voicemail" needs a voicemailMessage', "validation");
  }
  if (!voicemail && body.voicemailMessage !== undefined) {
    throw new AppError(422, "voicemail_message_unused", 'voicemailMessage is only left with machineDetection "voicemail"', "validation");
  }
}

const statusSchema = z.object({ id: z.string(), status: z.enum(CALL_STATUSES) }).openapi("CallControlResult");
const idParam = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) });

function controlRoute<const A extends "hangup" | "hold" | "resume">(action: A, summary: string) {
  return protectedRoute("calls:control", {
    method: "post",
    path: `/api/v1/calls/{id}/${action}` as `/api/v1/calls/{id}/${A}`,
    tags: ["calls"],
    summary,
    request: { params: idParam },
    responses: {
      200: jsonResponse(statusSchema, "Done (or already so)"),
      502: jsonResponse(z.unknown(), "The carrier refused"),
      ...notFoundResponse,
      ...conflictResponse,
    },
  });
}

const transferRoute = protectedRoute("calls:control", {
  method: "post",
  path: "/api/v1/calls/{id}/transfer",
  tags: ["calls"],
  summary: "Transfer the caller to a number or SIP URI",
  request: { params: idParam, ...jsonBody(z.strictObject({ to: z.string().regex(/^(\+[1-9]\d{6,14}|sips?:[^\s]{3,200})$/) })) },
  responses: {
    200: jsonResponse(statusSchema, "Transferring or transferred"),
    502: jsonResponse(z.unknown(), "The carrier refused"),
    ...notFoundResponse,
    ...conflictResponse,
  },
});

async function callOf(scope: TenantScope, id: string) {
  const [row] = (await scope.select(calls, eq(calls.id, id))) as Array<typeof calls.$inferSelect>;
  if (!row) throw notFound("Call");
  return row;
}

export const callControlRoutes = publicRouter()
  .openapi(placeRoute, async (c) => {
    const body = c.req.valid("json");
    checkVoicemail(body);
    const { result } = await placeOutboundCall(c.env, c.get("scope"), { ...body, correlationId: c.get("correlationId") });
    if (result.ok === false && result.admission) throw notAdmitted(result.admission);
    await auditFromRequest(c, {
      action: "call.place",
      targetType: "call",
      targetId: result.callId,
      outcome: result.ok ? "success" : "failure",
      details: result.ok ? { carrier: result.carrier, failover: result.failover?.from ?? null } : { reason: result.reason },
    });
    if (!result.ok) throw carrierUnavailable(`No carrier could place the call: ${result.reason}`);
    return c.json(
      { id: result.callId, sessionId: result.sessionId, carrier: result.carrier, status: result.status, failover: result.failover },
      201,
    );
  })
  .openapi(controlRoute("hangup", "Hang up (a call that already ended counts as success)"), async (c) => {
    const call = await callOf(c.get("scope"), c.req.valid("param").id);
    const status = settled(await callObject(c.env, call.sessionId).control({ action: "hangup" }, c.get("correlationId")));
    return c.json({ id: call.id, status }, 200);
  })
  .openapi(controlRoute("hold", "Put the caller on hold (the media stream stops)"), async (c) => {
    const call = await callOf(c.get("scope"), c.req.valid("param").id);
    const status = settled(await callObject(c.env, call.sessionId).control({ action: "hold" }, c.get("correlationId")));
    return c.json({ id: call.id, status }, 200);
  })
  .openapi(controlRoute("resume", "Take the caller off hold (the media stream reconnects)"), async (c) => {
    const call = await callOf(c.get("scope"), c.req.valid("param").id);
    const status = settled(await callObject(c.env, call.sessionId).control({ action: "resume" }, c.get("correlationId")));
    return c.json({ id: call.id, status }, 200);
  })
  .openapi(transferRoute, async (c) => {
    const call = await callOf(c.get("scope"), c.req.valid("param").id);
    const { to } = c.req.valid("json");
    const status = settled(await callObject(c.env, call.sessionId).control({ action: "transfer", to }, c.get("correlationId")));
    return c.json({ id: call.id, status }, 200);
  });

/** The call's status after a control command, or the error the API answers with. */
function settled(result: ControlResult) {
  if (result.ok) return result.status;
  if (result.error === "invalid_state") throw conflict("invalid_state", result.message);
  if (result.error === "unknown_call") throw notFound("Call");
  throw carrierUnavailable(result.message);
}
