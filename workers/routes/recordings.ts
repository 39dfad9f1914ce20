import { z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { errorResponse, jsonResponse, notFoundResponse, protectedRoute, publicRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { recordingObjectKey } from "../shared/db/recording-links.ts";
import { recordings } from "../shared/db/schema.ts";
import { AppError, notFound } from "../shared/errors.ts";
import { RECORDING_CHANNELS } from "../shared/recording-format.ts";
import { recordingLinkValid, signedRecordingLink } from "../shared/recordings.ts";
import { requireSettings } from "../shared/settings.ts";
import { recordingFile } from "./recording-file.ts";
import { sessionOf } from "./session-switching.ts";
import { sessionIdParam } from "./sessions.ts";

/**
 * A session's recording (README "Recordings"): its description with a signed link, for whoever may read the session's
 * transcript; and the WAV itself behind that link, which needs no bearer — a browser's `<audio>` or a download tool
 * can follow it — and answers 403 alike for a missing, altered or expired signature. Links need
 * RECORDING_SIGNING_KEY: without it (or with one too short to be a key) both routes refuse with 503
 * `configuration_error`; recording itself goes on.
 */
const recordingSchema = z
  .object({
    id: z.string(),
    durationMs: z.number().int(),
    channels: z.literal(RECORDING_CHANNELS).describe("caller left, agent right"),
    format: z.literal("wav"),
    url: z.string().describe("the WAV, signed; valid until expiresAt, no bearer needed"),
    expiresAt: z.string().describe("ISO 8601"),
  })
  .openapi("SessionRecording");

const describeRoute = protectedRoute("sessions:read", {
  method: "get",
  path: "/api/v1/sessions/{id}/recording",
  tags: ["sessions"],
  summary: "The session's two-channel recording, with a signed link to the WAV",
  request: { params: sessionIdParam },
  responses: {
    200: jsonResponse(recordingSchema, "The recording"),
    ...notFoundResponse,
    503: errorResponse("Recording links are not configured (RECORDING_SIGNING_KEY)"),
  },
});

const fileRoute = publicRoute({
  method: "get",
  path: "/recordings/{id}",
  tags: ["sessions"],
  summary: "A recording's WAV, through its signed link",
  request: {
    // Any id up to a bound: a malformed one is the same 403 as an altered one (its signature cannot match).
    params: z.object({ id: z.string().max(64) }),
    // Optional here so that a missing one is the same 403 as a wrong one, not a 400 that tells them apart.
    query: z.object({ exp: z.string().max(20).optional(), sig: z.string().max(100).optional() }),
  },
  responses: {
    200: {
      description: "The WAV (8 kHz, two channels): µ-law or A-law as the carrier sent it, PCM16 for web sessions",
      content: { "audio/wav": { schema: z.string().openapi({ format: "binary" }) } },
    },
    403: errorResponse("The link is missing its signature, altered or expired"),
    ...notFoundResponse,
    503: errorResponse("Recording links are not configured (RECORDING_SIGNING_KEY)"),
  },
});

const refused = () => new AppError(403, "invalid_link", "This recording link is not valid (altered or expired)", "authorization");

type RecordingRow = typeof recordings.$inferSelect;

export const recordingRoutes = publicRouter()
  .openapi(describeRoute, async (c) => {
    const settings = requireSettings(c.env, "recordingLinks");
    const { id } = c.req.valid("param");
    const scope = c.get("scope");
    await sessionOf(scope, id);
    const [row] = (await scope.select(recordings, eq(recordings.sessionId, id))) as RecordingRow[];
    if (!row) throw notFound("Recording");
    const link = await signedRecordingLink(
      settings.RECORDING_SIGNING_KEY,
      row.id,
      settings.RECORDING_URL_TTL_SECONDS,
      settings.PUBLIC_BASE_URL ?? c.req.url,
    );
    return c.json({ id: row.id, durationMs: row.durationMs, channels: RECORDING_CHANNELS, format: "wav" as const, ...link }, 200);
  })
  .openapi(fileRoute, async (c) => {
    const { RECORDING_SIGNING_KEY } = requireSettings(c.env, "recordingLinks");
    const { id } = c.req.valid("param");
    const { exp, sig } = c.req.valid("query");
    if (!exp || !sig || !/^\d+$/.test(exp) || !(await recordingLinkValid(RECORDING_SIGNING_KEY, id, Number(exp), sig))) throw refused();
    const key = await recordingObjectKey(c.env, id);
    const file = key ? await recordingFile(c.env.RECORDINGS, key) : null;
    if (!file) throw notFound("Recording");
    c.executionCtx.waitUntil(file.streamed);
    return c.body(file.body, 200, {
      "Content-Type": "audio/wav",
      "Content-Length": String(file.size),
      "Cache-Control": "private, no-store",
    });
  });
