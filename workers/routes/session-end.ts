import { z } from "@hono/zod-openapi";
import { conflictResponse, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { conflict } from "../shared/errors.ts";
import { callObject } from "../shared/session-ids.ts";
import { sessionOf } from "./session-switching.ts";
import { sessionIdParam } from "./sessions.ts";

/**
 * `POST /api/v1/sessions/{id}/end`: ends any session of the tenant — a web session at once (its provider socket and
 * browsers closed), a phone call by hanging it up at its carrier. Idempotent: an ended session answers as ended.
 */
const endRoute = protectedRoute("calls:control", {
  method: "post",
  path: "/api/v1/sessions/{id}/end",
  tags: ["sessions"],
  summary: "End the session: a web session at once, a phone call by hanging it up",
  request: { params: sessionIdParam },
  responses: {
    200: jsonResponse(z.object({ id: z.string(), channel: z.enum(["web", "phone"]), status: z.string() }).openapi("EndedSession"), "Ended"),
    ...notFoundResponse,
    ...conflictResponse,
  },
});

export const sessionEndRoutes = publicRouter().openapi(endRoute, async (c) => {
  const { id } = c.req.valid("param");
  const row = await sessionOf(c.get("scope"), id);
  const result = await callObject(c.env, id).endSession(c.get("correlationId"));
  await auditFromRequest(c, {
    action: "session.end",
    targetType: "session",
    targetId: id,
    outcome: result.ok ? "success" : "failure",
    details: { channel: row.channel },
  });
  if (result.kind === "unknown") return c.json({ id, channel: row.channel, status: row.status }, 200);
  if (!result.ok) throw conflict("invalid_state", `The session cannot be ended now (${result.status})`);
  return c.json({ id, channel: result.kind, status: result.status ?? "ended" }, 200);
});
