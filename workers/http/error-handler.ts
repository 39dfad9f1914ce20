import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { AppError, errorBody } from "../shared/errors.ts";
import { ConfigurationError } from "../shared/settings.ts";
import type { AppEnv } from "./context.ts";

/** Renders every failure as `{"error":{code,message,correlationId}}`; unknown errors never leak details. */
export const handleError: ErrorHandler<AppEnv> = (err, c) => {
  const correlationId = c.get("correlationId") ?? "unknown";
  const log = c.get("log");
  if (err instanceof AppError) {
    if (err.status >= 500) log?.error("http.error", { code: err.code, message: err.message });
    return c.json(errorBody(err.code, err.message, correlationId, err.details), err.status, withCorrelation(c, err.headers));
  }
  if (err instanceof ConfigurationError) {
    // The settings at fault are named in the log (and to an admin on /health), never to the caller.
    log?.error("config.invalid", { problems: err.problems });
    const message = "The platform is not configured for this request; the operator's logs have the details";
    return c.json(errorBody("configuration_error", message, correlationId), 503, withCorrelation(c, {}));
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    const code = status === 400 ? "malformed_request" : status === 413 ? "payload_too_large" : "http_error";
    return c.json(errorBody(code, err.message || "Bad request", correlationId), status, withCorrelation(c, {}));
  }
  log?.error("http.unhandled", { error: err instanceof Error ? { name: err.name, message: err.message } : String(err) });
  return c.json(errorBody("internal_error", "Internal error", correlationId), 500, withCorrelation(c, {}));
};

export const handleNotFound: NotFoundHandler<AppEnv> = (c) =>
  c.json(errorBody("not_found", `No route for ${c.req.method} ${new URL(c.req.url).pathname}`, c.get("correlationId")), 404);

function withCorrelation(c: Context<AppEnv>, headers: Record<string, string>): Record<string, string> {
  return { ...headers, "X-Correlation-ID": c.get("correlationId") ?? "unknown" };
}
