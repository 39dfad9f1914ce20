import { z } from "@hono/zod-openapi";
import { asc, eq } from "drizzle-orm";
import type { SwitchResult } from "../../durable-objects/voice/voice-session-types.ts";
import { jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { PROVIDER_NAMES, providerSwitches, SWITCH_REASONS, sessions } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { notFound } from "../shared/errors.ts";
import { callObject } from "../shared/session-ids.ts";
import { providerSchema } from "../shared/settings.ts";
import { sessionIdParam } from "./sessions.ts";

/**
 * Switching a live session's voice provider: on request (make before break, context carried), by automatic
 * failover on request, and the record of every switch. The session's object does the work and serialises it:
 * a second switch while one is under way answers 409.
 */
const switchResultSchema = z
  .object({
    success: z.boolean(),
    sessionId: z.string(),
    fromProvider: z.enum(PROVIDER_NAMES),
    toProvider: z.enum(PROVIDER_NAMES),
    contextPreserved: z.number().int().describe("conversation items (messages and tool calls) replayed into the new provider"),
    switchedAt: z.string().nullable(),
    durationMs: z.number().int(),
    error: z.string().nullable().describe("why the switch did not happen; the session stays on fromProvider"),
  })
  .openapi("SwitchResult");

const switchEntrySchema = z
  .object({
    id: z.string(),
    fromProvider: z.enum(PROVIDER_NAMES),
    toProvider: z.enum(PROVIDER_NAMES),
    reason: z.enum(SWITCH_REASONS),
    outcome: z.enum(["succeeded", "failed"]),
    error: z.string().nullable(),
    messagesCarried: z.number().int(),
    startedAt: z.string(),
    durationMs: z.number().int(),
  })
  .openapi("ProviderSwitch");

const failedSwitch = (description: string) => jsonResponse(switchResultSchema, description);

const switchRoute = protectedRoute("sessions:switch", {
  method: "post",
  path: "/api/v1/sessions/{id}/switch-provider",
  tags: ["sessions"],
  summary: "Switch the session's voice provider mid-conversation, carrying the conversation so far",
  request: {
    params: sessionIdParam,
    ...jsonBody(
      z.strictObject({
        provider: providerSchema,
        preserveContext: z.boolean().default(true),
        reason: z.string().max(200).optional().describe("free text kept in the logs and audit trail"),
        immediate: z.boolean().default(false).describe("cut over now, interrupting the agent, instead of at the next pause"),
      }),
    ),
  },
  responses: {
    200: jsonResponse(switchResultSchema, "Switched"),
    ...notFoundResponse,
    409: failedSwitch(
      "Not switched: another switch is under way, the session has ended, the target is the current provider, not configured, or its breaker is open",
    ),
    502: failedSwitch("Not switched: the target provider refused or failed its setup; the session stays on its provider"),
  },
});

const failoverRoute = protectedRoute("sessions:switch", {
  method: "post",
  path: "/api/v1/sessions/{id}/auto-failover",
  tags: ["sessions"],
  summary: "Fail over now to the best healthy provider in PROVIDER_ORDER",
  request: { params: sessionIdParam },
  responses: {
    200: jsonResponse(switchResultSchema, "Failed over"),
    ...notFoundResponse,
    409: jsonResponse(z.unknown(), "No other provider could take the session"),
  },
});

const statusRoute = protectedRoute("sessions:read", {
  method: "get",
  path: "/api/v1/sessions/{id}/switch-status",
  tags: ["sessions"],
  summary: "The switch under way, if any, and the last switch's result",
  request: { params: sessionIdParam },
  responses: {
    200: jsonResponse(
      z.object({
        provider: z.enum(PROVIDER_NAMES).nullable(),
        inProgress: z.object({ toProvider: z.enum(PROVIDER_NAMES), startedAt: z.string() }).nullable(),
        last: switchResultSchema.omit({ sessionId: true }).nullable(),
      }),
      "Switch status",
    ),
    ...notFoundResponse,
  },
});

const historyRoute = protectedRoute("sessions:read", {
  method: "get",
  path: "/api/v1/sessions/{id}/switch-history",
  tags: ["sessions"],
  summary: "Every provider switch of the session, oldest first",
  request: { params: sessionIdParam },
  responses: { 200: jsonResponse(z.object({ items: z.array(switchEntrySchema) }), "Switch history"), ...notFoundResponse },
});

/** The tenant's session row, or 404 (a session of another tenant is as missing as one that never was). */
export async function sessionOf(scope: TenantScope, id: string) {
  const [row] = (await scope.select(sessions, eq(sessions.id, id))) as Array<typeof sessions.$inferSelect>;
  if (!row) throw notFound("Session");
  return row;
}

const isResult = (value: object): value is SwitchResult => "success" in value;

/** 409 for a conflict with the session's state, 502 when the target provider itself failed. */
const failureStatus = (result: SwitchResult) =>
  result.error?.startsWith("could not connect") || result.error?.includes("before the cut-over") ? 502 : 409;

export const sessionSwitchingRoutes = publicRouter()
  .openapi(switchRoute, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    await sessionOf(c.get("scope"), id);
    const outcome = await callObject(c.env, id).switchProvider(body.provider, {
      preserveContext: body.preserveContext,
      immediate: body.immediate,
    });
    const result: SwitchResult = isResult(outcome)
      ? outcome
      : {
          success: false,
          fromProvider: body.provider,
          toProvider: body.provider,
          contextPreserved: 0,
          switchedAt: null,
          durationMs: 0,
          error: "the session has ended",
        };
    await auditFromRequest(c, {
      action: "session.switch_provider",
      targetType: "session",
      targetId: id,
      outcome: result.success ? "success" : "failure",
      details: { from: result.fromProvider, to: result.toProvider, reason: body.reason ?? null, error: result.error },
    });
    const answer = { ...result, sessionId: id };
    return result.success ? c.json(answer, 200) : c.json(answer, failureStatus(result));
  })
  .openapi(failoverRoute, async (c) => {
    const { id } = c.req.valid("param");
    await sessionOf(c.get("scope"), id);
    const outcome = await callObject(c.env, id).autoFailover();
    if (!isResult(outcome)) {
      return c.json(
        {
          error: { code: "no_failover_target", message: "No other provider could take the session", correlationId: c.get("correlationId") },
        },
        409,
      );
    }
    return c.json({ ...outcome, sessionId: id }, 200);
  })
  .openapi(statusRoute, async (c) => {
    const { id } = c.req.valid("param");
    await sessionOf(c.get("scope"), id);
    const status = await callObject(c.env, id).switchStatus();
    const last = status.last && "success" in status.last ? status.last : status.last ? fromEntry(status.last) : null;
    const inProgress = status.inProgress
      ? { toProvider: status.inProgress.toProvider, startedAt: new Date(status.inProgress.startedAt).toISOString() }
      : null;
    return c.json({ provider: status.provider, inProgress, last }, 200);
  })
  .openapi(historyRoute, async (c) => {
    const { id } = c.req.valid("param");
    const scope = c.get("scope");
    await sessionOf(scope, id);
    const rows = (await scope
      .select(providerSwitches, eq(providerSwitches.sessionId, id))
      .orderBy(asc(providerSwitches.startedAt), asc(providerSwitches.id))) as Array<typeof providerSwitches.$inferSelect>;
    const items = rows.map(({ tenantId: _tenant, sessionId: _session, startedAt, ...row }) => ({
      ...row,
      startedAt: new Date(startedAt).toISOString(),
    }));
    return c.json({ items }, 200);
  });

/** The last switch as the object's durable log has it (after an eviction the in-memory result is gone). */
function fromEntry(entry: {
  fromProvider: SwitchResult["fromProvider"];
  toProvider: SwitchResult["toProvider"];
  outcome: string;
  error: string | null;
  messagesCarried: number;
  startedAt: number;
  durationMs: number;
}) {
  const success = entry.outcome === "succeeded";
  return {
    success,
    fromProvider: entry.fromProvider,
    toProvider: entry.toProvider,
    contextPreserved: entry.messagesCarried,
    switchedAt: success ? new Date(entry.startedAt + entry.durationMs).toISOString() : null,
    durationMs: entry.durationMs,
    error: entry.error,
  };
}
