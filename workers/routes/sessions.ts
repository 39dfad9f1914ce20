import { z } from "@hono/zod-openapi";
import { and, asc, desc, eq, gte, lt, lte, or } from "drizzle-orm";
import { concurrencyLimitResponse, errorResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { creatorOf } from "../shared/db/principal-standing.ts";
import { promptRefOf, requirePrompt } from "../shared/db/prompts.ts";
import {
  calls,
  PROVIDER_NAMES,
  SESSION_CHANNELS,
  SESSION_STATUSES,
  sessionEscalations,
  sessions,
  TRANSCRIPT_ROLES,
  transcriptLines,
  turnTimings,
} from "../shared/db/schema.ts";
import { AppError, badRequest, notAdmitted, notFound } from "../shared/errors.ts";
import { ESCALATION_RULES } from "../shared/escalation.ts";
import { BROWSER_AUDIO_RATE, LIVE_SUBPROTOCOL } from "../shared/live-protocol.ts";
import { providerForNewSession } from "../shared/provider-health-client.ts";
import { callObject, SESSION_ID } from "../shared/session-ids.ts";
import { providerSchema } from "../shared/settings.ts";
import { stagesOf } from "../shared/turn-timings.ts";
import { callSchema, presentCall } from "./calls.ts";
import { decodeCursor, encodeCursor, pageQuery } from "./pagination.ts";

/** The most transcript lines one session detail answers with (the object keeps as many; D1 keeps all). */
export const TRANSCRIPT_LINES_IN_DETAIL = 2_000;
/** The most agent turns one session detail answers with (the first ones). */
export const TURNS_IN_DETAIL = 1_000;

// Session ids are UUID-shaped, but inbound ones are derived from a hash (no RFC 9562 version bits), so not z.uuid().
export const sessionIdParam = z.object({
  id: z
    .string()
    .regex(SESSION_ID, { error: "must be a session id" })
    .openapi({ param: { name: "id", in: "path" } }),
});

const sessionSchema = z
  .object({
    id: z.string(),
    channel: z.enum(SESSION_CHANNELS),
    status: z.enum(SESSION_STATUSES),
    provider: z.enum(PROVIDER_NAMES),
    instructions: z.string().nullable(),
    prompt: z
      .object({ id: z.string(), version: z.number().int() })
      .nullable()
      .describe("the prompt and the version of it the session runs (fixed at its start); null when it runs none"),
    metadata: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
      .describe("context given to the agent and carried across provider switches"),
    correlationId: z.string(),
    createdAt: z.string(),
    endedAt: z.string().nullable(),
  })
  .openapi("Session");

const transcriptLineSchema = z
  .object({
    seq: z.number().int(),
    role: z.enum(TRANSCRIPT_ROLES),
    text: z.string(),
    provider: z.enum(PROVIDER_NAMES),
    interrupted: z.boolean(),
    at: z.string().describe("when the line was spoken (ISO 8601)"),
  })
  .openapi("TranscriptLine");

const instant = (what: string) => z.string().nullable().describe(`${what} (ISO 8601, ms); null when it never happened`);
const stage = (what: string) => z.number().int().nullable().describe(`${what}, ms; null when either end is`);

const turnSchema = z
  .object({
    seq: z.number().int().describe("the turn's number in the session, from 1"),
    provider: z.enum(PROVIDER_NAMES).describe("the provider whose audio the reply was"),
    callerStoppedAt: instant("the caller's speech end this reply answered; null for a greeting"),
    providerFirstAudioAt: z.string().describe("the provider's first audio of the reply reached the call's object (ISO 8601)"),
    firstFrameSentAt: instant("the reply's first frame handed to the caller's leg"),
    firstMarkHeardAt: instant("the carrier echoed the first mark after it: the caller heard it; null for a browser (no marks)"),
    stages: z.object({
      providerMs: stage("caller's speech end → provider's first audio"),
      platformMs: stage("provider's first audio → first frame to the leg"),
      carrierMs: stage("first frame to the leg → first mark echoed"),
      earMs: stage("caller's speech end → first mark echoed (latency at the caller's ear)"),
    }),
    interrupted: z.boolean().describe("the caller cut the reply off (barge-in, or a switch's cut-over)"),
  })
  .openapi("Turn");

const sessionDetailSchema = sessionSchema
  .extend({
    call: callSchema
      .nullable()
      .describe("the session's latest call (as GET /api/v1/calls/{id}, without its events), or null for a web session"),
    transcript: z.array(transcriptLineSchema).describe(`every line in order, at most ${TRANSCRIPT_LINES_IN_DETAIL}`),
    turns: z
      .array(turnSchema)
      .describe(`every finished agent turn in order, at most ${TURNS_IN_DETAIL}: latency at the caller's ear, stage by stage`),
    escalations: z
      .array(
        z.object({
          rule: z.enum(ESCALATION_RULES),
          reason: z.string(),
          at: z.string(),
          transfer: z.object({ to: z.string(), ok: z.boolean(), error: z.string().nullable() }).nullable(),
        }),
      )
      .describe("the tenant's escalation rules that fired during the session, oldest first (each at most once)"),
    live: z
      .object({
        provider: z.enum(PROVIDER_NAMES),
        providerState: z.enum(["connecting", "connected", "reconnecting", "failed", "closed"]),
        counters: z
          .record(z.string(), z.number())
          .describe("caller frames in and dropped, agent chunks, barge-ins, reconnects, provider errors, tool calls"),
      })
      .nullable()
      .describe("what the live session's object reports (null once the session has ended)"),
    pendingSync: z
      .object({
        events: z.number().int(),
        transcriptLines: z.number().int(),
        switches: z.number().int(),
        overBound: z.array(z.enum(["events", "transcript", "switches"])),
      })
      .nullable()
      .describe(
        "what the session's object holds that D1 has not accepted yet (history events, transcript lines with their turn " +
          "timings, provider switches) and which outboxes are past their bound; null when the object cannot be asked",
      ),
  })
  .openapi("SessionDetail");

type SessionRow = typeof sessions.$inferSelect;
type CallRow = typeof calls.$inferSelect;
type TranscriptRow = typeof transcriptLines.$inferSelect;
type TurnRow = typeof turnTimings.$inferSelect;
type EscalationRow = typeof sessionEscalations.$inferSelect;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const presentTurn = (row: TurnRow, index: number): z.infer<typeof turnSchema> => ({
  seq: index + 1,
  provider: row.provider,
  callerStoppedAt: iso(row.callerStoppedAt),
  providerFirstAudioAt: new Date(row.providerFirstAudioAt).toISOString(),
  firstFrameSentAt: iso(row.firstFrameSentAt),
  firstMarkHeardAt: iso(row.firstMarkHeardAt),
  stages: stagesOf(row),
  interrupted: row.interrupted,
});

export const presentSession = (row: Omit<SessionRow, "contentPurgedAt">): z.infer<typeof sessionSchema> => ({
  id: row.id,
  channel: row.channel,
  status: row.status,
  provider: row.provider,
  instructions: row.instructions,
  prompt: row.promptId !== null && row.promptVersion !== null ? { id: row.promptId, version: row.promptVersion } : null,
  metadata: row.metadata ?? {},
  correlationId: row.correlationId,
  createdAt: new Date(row.createdAt).toISOString(),
  endedAt: iso(row.endedAt),
});

const listQuery = pageQuery.extend({
  status: z.enum(SESSION_STATUSES).optional(),
  channel: z.enum(SESSION_CHANNELS).optional(),
  provider: z.enum(PROVIDER_NAMES).optional(),
  since: z.iso.datetime().optional().describe("created at or after (ISO 8601)"),
  until: z.iso.datetime().optional().describe("created at or before (ISO 8601)"),
});

const listRoute = protectedRoute("sessions:read", {
  method: "get",
  path: "/api/v1/sessions",
  tags: ["sessions"],
  summary: "The tenant's sessions, newest first, filtered by status, channel, provider and time",
  request: { query: listQuery },
  responses: { 200: jsonResponse(z.object({ items: z.array(sessionSchema), nextCursor: z.string().nullable() }), "A page of sessions") },
});

const getRoute = protectedRoute("sessions:read", {
  method: "get",
  path: "/api/v1/sessions/{id}",
  tags: ["sessions"],
  summary: "One session with its latest call and its transcript",
  request: { params: sessionIdParam },
  responses: { 200: jsonResponse(sessionDetailSchema, "The session"), ...notFoundResponse },
});

const createdSchema = sessionSchema
  .extend({
    live: z.object({
      path: z.string().describe("open as a WebSocket with ?role=caller to be the caller, ?role=supervisor to watch"),
      subprotocol: z.literal(LIVE_SUBPROTOCOL).describe("offer it with `bearer.<access token>` in Sec-WebSocket-Protocol"),
      audio: z.object({ encoding: z.literal("pcm16le"), sampleRate: z.literal(BROWSER_AUDIO_RATE), channels: z.literal(1) }),
    }),
  })
  .openapi("CreatedSession");

const createRoute = protectedRoute("sessions:create", {
  method: "post",
  path: "/api/v1/sessions",
  tags: ["sessions"],
  summary: "Start a web session: the browser is the caller; the provider is dialled now, before the browser joins",
  request: jsonBody(
    z.strictObject({
      provider: providerSchema.optional().describe("default: DEFAULT_PROVIDER, else local"),
      instructions: z.string().min(1).max(8_000).optional().describe("the agent's instructions (system prompt)"),
      promptId: z.uuid().optional().describe("a prompt of the tenant's: its current version's instructions; wins over instructions"),
      metadata: z
        .record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/), z.union([z.string().max(500), z.number(), z.boolean()]))
        .refine((value) => Object.keys(value).length <= 20, { error: "at most 20 entries" })
        .optional()
        .describe("context for the agent (customer name, account, …); carried across provider switches"),
    }),
  ),
  responses: {
    201: jsonResponse(createdSchema, "Created; join it on `live.path`"),
    502: jsonResponse(z.unknown(), "The session's object could not be started"),
    503: jsonResponse(
      z.unknown(),
      "The tenant's concurrency limit could not be checked, or the platform is at capacity; nothing was started",
    ),
    ...concurrencyLimitResponse,
    422: errorResponse("promptId names no prompt of the tenant's"),
  },
});

export const sessionReadRoutes = publicRouter()
  .openapi(createRoute, async (c) => {
    const body = c.req.valid("json");
    const scope = c.get("scope");
    const id = crypto.randomUUID();
    const prompt = body.promptId ? await requirePrompt(c.env, scope, body.promptId) : null;
    const provider = await providerForNewSession(c.env, body.provider ?? null);
    const metadata = body.metadata ?? {};
    const row = {
      id,
      channel: "web" as const,
      status: "active" as const,
      provider,
      instructions: prompt?.instructions ?? body.instructions ?? null,
      promptId: prompt?.id ?? null,
      promptVersion: prompt?.version ?? null,
      metadata,
      correlationId: c.get("correlationId"),
      createdBy: creatorOf(c.get("principal")),
      createdAt: Date.now(),
      endedAt: null,
    };
    // The object first: it takes the session's slot under the tenant's concurrency limit, and a session refused
    // leaves nothing behind. The D1 row is written before the answer names the live path, which looks it up there.
    const object = callObject(c.env, id);
    const opened = await object
      .openWebSession({
        sessionId: id,
        tenantId: scope.tenantId,
        provider,
        instructions: row.instructions,
        prompt: prompt && promptRefOf(prompt),
        metadata,
        correlationId: row.correlationId,
      })
      .catch(() => ({ ok: false as const, admission: undefined }));
    if (!opened.ok && opened.admission) throw notAdmitted(opened.admission);
    if (opened.ok) {
      // A session D1 does not know could not be joined or listed: end it (and free its slot) rather than leave it open.
      await scope.insert(sessions, row).catch(async (error: unknown) => {
        await object.endSession(row.correlationId).catch(() => undefined);
        throw error;
      });
    }
    await auditFromRequest(c, {
      action: "session.create",
      targetType: "session",
      targetId: id,
      outcome: opened.ok ? "success" : "failure",
      details: { provider, ...(prompt && { prompt: { id: prompt.id, version: prompt.version } }) },
    });
    if (!opened.ok) throw new AppError(502, "session_unavailable", "The session could not be started", "dependency");
    const live = {
      path: `/api/v1/sessions/${id}/live`,
      subprotocol: LIVE_SUBPROTOCOL,
      audio: { encoding: "pcm16le" as const, sampleRate: BROWSER_AUDIO_RATE, channels: 1 as const },
    };
    return c.json({ ...presentSession({ ...row, tenantId: scope.tenantId }), live }, 201);
  })
  .openapi(listRoute, async (c) => {
    const query = c.req.valid("query");
    const before = decodeCursor(query.cursor);
    if (query.cursor && (!before || typeof before[0] !== "number" || typeof before[1] !== "string")) {
      throw badRequest("invalid_cursor", "cursor is not valid");
    }
    const rows = (await c
      .get("scope")
      .select(
        sessions,
        query.status ? eq(sessions.status, query.status) : undefined,
        query.channel ? eq(sessions.channel, query.channel) : undefined,
        query.provider ? eq(sessions.provider, query.provider) : undefined,
        query.since ? gte(sessions.createdAt, Date.parse(query.since)) : undefined,
        query.until ? lte(sessions.createdAt, Date.parse(query.until)) : undefined,
        before
          ? or(
              lt(sessions.createdAt, Number(before[0])),
              and(eq(sessions.createdAt, Number(before[0])), lt(sessions.id, String(before[1]))),
            )
          : undefined,
      )
      .orderBy(desc(sessions.createdAt), desc(sessions.id))
      .limit(query.limit + 1)) as SessionRow[];
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return c.json(
      { items: page.map(presentSession), nextCursor: rows.length > query.limit && last ? encodeCursor([last.createdAt, last.id]) : null },
      200,
    );
  })
  .openapi(getRoute, async (c) => {
    const scope = c.get("scope");
    const { id } = c.req.valid("param");
    const [row] = (await scope.select(sessions, eq(sessions.id, id))) as SessionRow[];
    if (!row) throw notFound("Session");
    const [calledRows, lines, turns, escalations] = await Promise.all([
      scope.select(calls, eq(calls.sessionId, id)).orderBy(desc(calls.createdAt), desc(calls.id)).limit(1),
      scope.select(transcriptLines, eq(transcriptLines.sessionId, id)).orderBy(asc(transcriptLines.seq)).limit(TRANSCRIPT_LINES_IN_DETAIL),
      scope
        .select(turnTimings, eq(turnTimings.sessionId, id))
        .orderBy(asc(turnTimings.providerFirstAudioAt), asc(turnTimings.id))
        .limit(TURNS_IN_DETAIL),
      scope.select(sessionEscalations, eq(sessionEscalations.sessionId, id)).orderBy(asc(sessionEscalations.at)),
    ]);
    const call = (calledRows as CallRow[])[0];
    const object = callObject(c.env, id);
    const [live, pendingSync] = await Promise.all([
      row.status === "active" ? object.liveState().catch(() => null) : null,
      // Asked of ended sessions too: their last lines may still be on the way.
      object.pendingSync().catch(() => null),
    ]);
    return c.json(
      {
        ...presentSession(row),
        live,
        pendingSync,
        call: call ? presentCall(call) : null,
        transcript: (lines as TranscriptRow[]).map((line) => ({
          seq: line.seq,
          role: line.role,
          text: line.text,
          provider: line.provider,
          interrupted: line.interrupted,
          at: new Date(line.occurredAt).toISOString(),
        })),
        turns: (turns as TurnRow[]).map(presentTurn),
        escalations: (escalations as EscalationRow[]).map(presentEscalation),
      },
      200,
    );
  });

function presentEscalation(row: EscalationRow) {
  return {
    rule: row.rule,
    reason: row.reason,
    at: new Date(row.at).toISOString(),
    transfer: row.transferTo === null ? null : { to: row.transferTo, ok: row.transferOk === true, error: row.transferError },
  };
}
