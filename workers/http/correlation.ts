import type { MiddlewareHandler } from "hono";
import { createLogger } from "../shared/logger.ts";
import type { AppEnv } from "./context.ts";

export const CORRELATION_HEADER = "X-Correlation-ID";
// Accept a caller's id only if it is short and plain, so it is safe to echo into headers and logs.
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{8,128}$/;

export function correlationIdFrom(request: Request): string {
  const offered = request.headers.get(CORRELATION_HEADER);
  return offered && ACCEPTABLE_ID.test(offered) ? offered : crypto.randomUUID();
}

/** First middleware of every request: correlation id, client IP, request logger, and one access log line. */
export const correlation: MiddlewareHandler<AppEnv> = async (c, next) => {
  const correlationId = correlationIdFrom(c.req.raw);
  const clientIp = c.req.header("CF-Connecting-IP") ?? "unknown";
  const log = createLogger({ correlationId });
  c.set("correlationId", correlationId);
  c.set("clientIp", clientIp);
  c.set("log", log);
  const started = Date.now();
  await next();
  c.header(CORRELATION_HEADER, correlationId);
  const principal = c.get("principal");
  log.info("http.request", {
    method: c.req.method,
    path: new URL(c.req.url).pathname,
    status: c.res.status,
    durationMs: Date.now() - started,
    tenantId: principal?.tenantId,
    principalId: principal?.id,
  });
};
