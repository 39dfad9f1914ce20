import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../http/context.ts";
import { errorSchema } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { authenticate, authorize, bearerCredential, credentialShape } from "../identity/middleware.ts";
import { PERMISSIONS, type Permission, roleHas } from "../identity/permissions.ts";
import type { Principal } from "../identity/principal.ts";
import { creatorOf, type PrincipalRef } from "../shared/db/principal-standing.ts";
import { sessions } from "../shared/db/schema.ts";
import { AppError, badRequest, conflict, errorBody, notFound, serviceUnavailable, unauthorized } from "../shared/errors.ts";
import { LIVE_ATTACHMENT_HEADER, LIVE_SUBPROTOCOL, type LiveAttachment, type LiveRole } from "../shared/live-protocol.ts";
import { callObject, isSessionId } from "../shared/session-ids.ts";
import { isWebSocketUpgrade } from "../shared/websockets.ts";

/**
 * `GET /api/v1/sessions/{id}/live`: the browser's WebSocket to a session's object. Everything is decided here,
 * before the object is touched: the credential (browsers cannot set headers on a WebSocket, so they offer it as the
 * subprotocol `bearer.<credential>` next to `switchboard.v1`; scripts use `Authorization`), the role's permission,
 * and that the session exists in the principal's tenant. The object then trusts `X-Live-Attachment`, because only
 * the Worker can reach it. The credential itself is never forwarded, logged or echoed.
 */
const LIVE_ROLES = ["supervisor", "caller"] as const satisfies readonly LiveRole[];
const ROLE_PERMISSION: Record<LiveRole, Permission> = { supervisor: "sessions:read", caller: "sessions:create" };
const BEARER_PROTOCOL = "bearer.";

function refuse(c: Context<AppEnv>, reason: string, error: AppError, fields: Record<string, unknown> = {}): never {
  c.get("log").warn("security.live_refused", { reason, status: error.status, path: new URL(c.req.url).pathname, ...fields });
  throw error;
}

/** The credential from `Authorization` or from the offered subprotocols; never both. */
function offeredCredential(c: Context<AppEnv>): string | null {
  const header = c.req.header("Sec-WebSocket-Protocol");
  const authorization = c.req.header("Authorization");
  if (header === undefined) return bearerCredential(authorization);
  const offered = header
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
  if (!offered.includes(LIVE_SUBPROTOCOL))
    refuse(c, "subprotocol", badRequest("unsupported_subprotocol", `Offer the ${LIVE_SUBPROTOCOL} subprotocol`));
  const bearers = offered.filter((item) => item.startsWith(BEARER_PROTOCOL));
  if (bearers.length > 1 || (bearers.length === 1 && authorization !== undefined)) {
    refuse(c, "ambiguous_credential", badRequest("ambiguous_credential", "Send one credential, in Authorization or in the subprotocol"));
  }
  if (bearers.length === 0) return bearerCredential(authorization);
  return credentialShape(bearers[0]!.slice(BEARER_PROTOCOL.length));
}

/** Authentication, role permission and tenant binding, in that order, before any validation or lookup. */
const liveAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const credential = offeredCredential(c);
  if (!credential) refuse(c, "missing_credential", unauthorized());
  let principal: Principal;
  try {
    principal = await authenticate(c, credential);
  } catch (error) {
    if (error instanceof AppError) refuse(c, error.code, error);
    throw error;
  }
  const role = c.req.query("role") ?? "supervisor";
  // An unknown role fails validation next (400); until then it is held to the route's base permission.
  try {
    authorize(c, principal, (LIVE_ROLES as readonly string[]).includes(role) ? ROLE_PERMISSION[role as LiveRole] : "sessions:read");
  } catch (error) {
    if (error instanceof AppError) refuse(c, error.code, error, { tenantId: principal.tenantId, principalId: principal.id, role });
    throw error;
  }
  await next();
};

const liveRoute = createRoute({
  method: "get",
  path: "/api/v1/sessions/{id}/live",
  tags: ["sessions"],
  summary: "WebSocket to the session's object: live events for supervisors, audio both ways for a web session's caller",
  description:
    `Upgrade with \`Sec-WebSocket-Protocol: ${LIVE_SUBPROTOCOL}, bearer.<access token or API key>\` (browsers) or ` +
    "`Authorization: Bearer …` (scripts). `role=supervisor` needs sessions:read; `role=caller` needs a web session " +
    "and sessions:create when its creator joins, sessions:supervise for anyone else. A socket whose principal loses " +
    'that access is closed (4401, 4403). See the README, "Live sessions", for the message vocabulary.',
  security: [{ bearer: [] }],
  "x-permission": "sessions:read",
  middleware: [liveAuth] as const,
  request: {
    params: z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) }),
    query: z.object({ role: z.enum(LIVE_ROLES).default("supervisor") }),
  },
  responses: {
    101: { description: `Switching Protocols; \`Sec-WebSocket-Protocol: ${LIVE_SUBPROTOCOL}\` when subprotocols were offered` },
    400: {
      description: "Unknown role, subprotocol without switchboard.v1, or two credentials",
      content: { "application/json": { schema: errorSchema } },
    },
    401: { description: "Missing, invalid, expired or revoked credential", content: { "application/json": { schema: errorSchema } } },
    403: {
      description: "The role lacks the permission (or joins another's web session without sessions:supervise)",
      content: { "application/json": { schema: errorSchema } },
    },
    404: { description: "No such session in the caller's tenant", content: { "application/json": { schema: errorSchema } } },
    409: { description: "role=caller on a session that is not a web session", content: { "application/json": { schema: errorSchema } } },
    426: { description: "Not a WebSocket upgrade", content: { "application/json": { schema: errorSchema } } },
    429: { description: "Rate limited; see Retry-After", content: { "application/json": { schema: errorSchema } } },
  },
});

export const sessionLiveRoutes = publicRouter().openapi(liveRoute, async (c) => {
  const { role } = c.req.valid("query");
  const id = c.req.param("id");
  const principal = c.get("principal");
  const correlationId = c.get("correlationId");
  const who = { tenantId: principal.tenantId, principalId: principal.id, role };

  const [session] = isSessionId(id) ? await c.get("scope").select(sessions, eq(sessions.id, id)).limit(1) : [];
  if (!session) refuse(c, "unknown_session", notFound("Session"), who);
  if (role === "caller" && session.channel !== "web")
    refuse(c, "not_web_session", conflict("not_a_web_session", "Only a web session has a browser caller"), who);
  // A web session's caller is whoever created it; anyone else joining as the caller takes the call over.
  const joinsOwn = role === "caller" && session.createdBy === creatorOf(principal);
  const permission = role === "supervisor" ? "sessions:read" : joinsOwn ? "sessions:create" : "sessions:supervise";
  if (permission === "sessions:supervise") {
    try {
      authorize(c, principal, permission);
    } catch (error) {
      if (error instanceof AppError) refuse(c, "not_session_creator", error, who);
      throw error;
    }
  }
  if (!isWebSocketUpgrade(c.req.raw.headers)) {
    return c.json(errorBody("upgrade_required", "Expected a WebSocket upgrade", correlationId), 426, { Upgrade: "websocket" });
  }

  // What the object will trust about this socket (it adds `connectedAt`).
  const attachment: Omit<LiveAttachment, "connectedAt"> = {
    tenantId: principal.tenantId,
    principal: principalRef(principal),
    role,
    roles: [...PERMISSIONS[permission]],
    // Only a watcher may whisper or take over (a web caller is the other party), and only with the role for it.
    ...(role === "supervisor" && roleHas(principal.role, "sessions:supervise")
      ? { superviseRoles: [...PERMISSIONS["sessions:supervise"]] }
      : {}),
    correlationId,
  };
  const headers = new Headers({
    Upgrade: "websocket",
    "X-Correlation-ID": correlationId,
    [LIVE_ATTACHMENT_HEADER]: JSON.stringify(attachment),
  });
  const upstream = await callObject(c.env, id).fetch(new Request("https://session.internal/live", { headers }));
  if (upstream.status !== 101 || !upstream.webSocket) {
    if (upstream.status === 404) refuse(c, "object_refused", notFound("Session"), who);
    c.get("log").warn("live.upgrade_failed", { status: upstream.status, ...who });
    throw serviceUnavailable("session_unavailable", "The session cannot take live connections right now");
  }
  c.get("log").info("live.connected", who);
  // A browser that offered subprotocols fails the handshake unless the 101 names the one we speak.
  if (c.req.header("Sec-WebSocket-Protocol") === undefined) return upstream;
  const answer = new Headers(upstream.headers);
  answer.set("Sec-WebSocket-Protocol", LIVE_SUBPROTOCOL);
  return new Response(null, { status: 101, webSocket: upstream.webSocket, headers: answer });
});

/** What the object rechecks while the socket is open: the key, or the user and this very token. */
function principalRef(principal: Principal): PrincipalRef {
  return principal.kind === "api_key"
    ? { kind: "api_key", id: principal.id }
    : { kind: "user", id: principal.id, tokenId: principal.jti, issuedAt: principal.issuedAt };
}
