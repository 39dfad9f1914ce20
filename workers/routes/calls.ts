import { z } from "@hono/zod-openapi";
import { and, asc, desc, eq, gte, lt, lte, or } from "drizzle-orm";
import { jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { ANSWERED_BY, CALL_STATUSES, CARRIERS, callEvents, calls, MACHINE_DETECTION_MODES, MACHINE_OUTCOMES } from "../shared/db/schema.ts";
import { badRequest, notFound } from "../shared/errors.ts";
import { decodeCursor, encodeCursor, pageQuery } from "./pagination.ts";

export const callSchema = z
  .object({
    id: z.string(),
    sessionId: z.string(),
    carrier: z.enum(CARRIERS),
    carrierCallId: z.string().nullable(),
    direction: z.enum(["inbound", "outbound"]),
    from: z.string(),
    to: z.string(),
    status: z.enum(CALL_STATUSES),
    failureReason: z.string().nullable(),
    createdAt: z.string(),
    answeredAt: z.string().nullable(),
    endedAt: z.string().nullable(),
    updatedAt: z.string(),
    machineDetection: z.enum(MACHINE_DETECTION_MODES).nullable().describe("answering-machine detection asked for (outbound)"),
    answeredBy: z.enum(ANSWERED_BY).nullable().describe("the carrier's verdict; null until it comes, or without detection"),
    machineOutcome: z.enum(MACHINE_OUTCOMES).nullable().describe("agent, machine_hangup or voicemail_left"),
    voicemail: z
      .object({ chars: z.number(), sha256: z.string() })
      .nullable()
      .describe("the voicemail left: its length and the SHA-256 of its text"),
  })
  .openapi("Call");

const eventSchema = z
  .object({
    seq: z.number(),
    source: z.string(),
    event: z.string(),
    fromStatus: z.string().nullable(),
    toStatus: z.string().nullable(),
    outcome: z.string(),
    carrierSequence: z.number().nullable(),
    detail: z.string().nullable(),
    occurredAt: z.string(),
  })
  .openapi("CallEvent");

type CallRow = typeof calls.$inferSelect;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
export const presentCall = (row: CallRow): z.infer<typeof callSchema> => ({
  id: row.id,
  sessionId: row.sessionId,
  carrier: row.carrier,
  carrierCallId: row.carrierCallId,
  direction: row.direction,
  from: row.fromNumber,
  to: row.toNumber,
  status: row.status,
  failureReason: row.failureReason,
  createdAt: new Date(row.createdAt).toISOString(),
  answeredAt: iso(row.answeredAt),
  endedAt: iso(row.endedAt),
  updatedAt: new Date(row.updatedAt).toISOString(),
  machineDetection: row.machineDetection,
  answeredBy: row.answeredBy,
  machineOutcome: row.machineOutcome,
  voicemail:
    row.voicemailChars !== null && row.voicemailSha256 !== null ? { chars: row.voicemailChars, sha256: row.voicemailSha256 } : null,
});

const listQuery = pageQuery.extend({
  status: z.enum(CALL_STATUSES).optional(),
  direction: z.enum(["inbound", "outbound"]).optional(),
  carrier: z.enum(CARRIERS).optional(),
  since: z.iso.datetime().optional().describe("created at or after (ISO 8601)"),
  until: z.iso.datetime().optional().describe("created at or before (ISO 8601)"),
});

const listRoute = protectedRoute("calls:read", {
  method: "get",
  path: "/api/v1/calls",
  tags: ["calls"],
  summary: "The tenant's calls, newest first, filtered by status, direction, carrier and time",
  request: { query: listQuery },
  responses: { 200: jsonResponse(z.object({ items: z.array(callSchema), nextCursor: z.string().nullable() }), "A page of calls") },
});

const getRoute = protectedRoute("calls:read", {
  method: "get",
  path: "/api/v1/calls/{id}",
  tags: ["calls"],
  summary: "One call with its event history",
  request: { params: z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) }) },
  responses: { 200: jsonResponse(callSchema.extend({ events: z.array(eventSchema) }), "The call"), ...notFoundResponse },
});

export const callReadRoutes = publicRouter()
  .openapi(listRoute, async (c) => {
    const query = c.req.valid("query");
    const before = decodeCursor(query.cursor);
    if (query.cursor && (!before || typeof before[0] !== "number" || typeof before[1] !== "string")) {
      throw badRequest("invalid_cursor", "cursor is not valid");
    }
    const rows = (await c
      .get("scope")
      .select(
        calls,
        query.status ? eq(calls.status, query.status) : undefined,
        query.direction ? eq(calls.direction, query.direction) : undefined,
        query.carrier ? eq(calls.carrier, query.carrier) : undefined,
        query.since ? gte(calls.createdAt, Date.parse(query.since)) : undefined,
        query.until ? lte(calls.createdAt, Date.parse(query.until)) : undefined,
        before
          ? or(lt(calls.createdAt, Number(before[0])), and(eq(calls.createdAt, Number(before[0])), lt(calls.id, String(before[1]))))
          : undefined,
      )
      .orderBy(desc(calls.createdAt), desc(calls.id))
      .limit(query.limit + 1)) as CallRow[];
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return c.json(
      { items: page.map(presentCall), nextCursor: rows.length > query.limit && last ? encodeCursor([last.createdAt, last.id]) : null },
      200,
    );
  })
  .openapi(getRoute, async (c) => {
    const scope = c.get("scope");
    const { id } = c.req.valid("param");
    const [row] = (await scope.select(calls, eq(calls.id, id))) as CallRow[];
    if (!row) throw notFound("Call");
    const events = (await scope.select(callEvents, eq(callEvents.callId, id)).orderBy(asc(callEvents.seq))) as Array<
      typeof callEvents.$inferSelect
    >;
    return c.json(
      {
        ...presentCall(row),
        events: events.map((event) => ({
          seq: event.seq,
          source: event.source,
          event: event.event,
          fromStatus: event.fromStatus,
          toStatus: event.toStatus,
          outcome: event.outcome,
          carrierSequence: event.carrierSequence,
          detail: event.detail,
          occurredAt: new Date(event.occurredAt).toISOString(),
        })),
      },
      200,
    );
  });
