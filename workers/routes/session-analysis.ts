import { z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { analysisResultSchema } from "../shared/analysis/result.ts";
import { ANALYSIS_STATUSES, sessionAnalysis } from "../shared/db/schema.ts";
import { sessionOf } from "./session-switching.ts";
import { sessionIdParam } from "./sessions.ts";

/**
 * `GET /api/v1/sessions/{id}/analysis`: the session's post-call analysis (workers/shared/analysis/). `pending` until it is
 * made (a live session, or one whose analysis is still being tried), `failed` with the reason after the last try.
 */
const result = analysisResultSchema.shape;
const analysisSchema = z
  .object({
    status: z.enum(ANALYSIS_STATUSES),
    summary: result.summary.nullable(),
    sentiment: result.sentiment.nullable(),
    insights: result.insights,
    actionItems: result.actionItems,
    topics: result.topics,
    escalation: result.escalation.nullable(),
    model: z.string().nullable(),
    error: z.string().nullable().describe("why the analysis failed (its last attempt's reason)"),
    attempts: z.number().int(),
    tokens: z.object({ input: z.number().int(), output: z.number().int() }),
  })
  .openapi("SessionAnalysis");

const analysisRoute = protectedRoute("sessions:read", {
  method: "get",
  path: "/api/v1/sessions/{id}/analysis",
  tags: ["sessions"],
  summary: "The session's post-call analysis: summary, sentiment, insights, action items, topics",
  request: { params: sessionIdParam },
  responses: { 200: jsonResponse(analysisSchema, "The analysis, or its status"), ...notFoundResponse },
});

export const sessionAnalysisRoutes = publicRouter().openapi(analysisRoute, async (c) => {
  const { id } = c.req.valid("param");
  const scope = c.get("scope");
  await sessionOf(scope, id);
  const [row] = (await scope.select(sessionAnalysis, eq(sessionAnalysis.sessionId, id))) as Array<typeof sessionAnalysis.$inferSelect>;
  const ready = row?.status === "ready" ? analysisResultSchema.safeParse(row.result) : null;
  const tokens = { input: row?.inputTokens ?? 0, output: row?.outputTokens ?? 0 };
  const base = { model: row?.model ?? null, error: row?.error ?? null, attempts: row?.attempts ?? 0, tokens };
  if (ready?.success) return c.json({ status: "ready" as const, ...ready.data, ...base }, 200);
  return c.json(
    {
      status: row?.status === "failed" ? ("failed" as const) : ("pending" as const),
      summary: null,
      sentiment: null,
      insights: [],
      actionItems: [],
      topics: [],
      escalation: null,
      ...base,
    },
    200,
  );
});
