import type { ContentfulStatusCode } from "hono/utils/http-status";

/**
 * One error model for the whole platform: every failure a client can see is an AppError with a stable code, a
 * category and an HTTP status. Anything else that escapes a handler is an internal error and is rendered without
 * its message or stack.
 */
export type ErrorCategory =
  | "validation"
  | "authentication"
  | "authorization"
  | "not_found"
  | "conflict"
  | "rate_limit"
  | "payload"
  | "configuration"
  | "dependency"
  | "internal";

/** What went wrong, short enough for a call's record, a switch log or a log line: an error's message, capped. */
export function reasonOf(error: unknown, fallback = "unknown error"): string {
  return error instanceof Error ? error.message.slice(0, 200) : fallback;
}

/** Only an error's kind, for logs where its message may carry someone's words or a query's parameters. */
export const errorType = (error: unknown): string => (error instanceof Error ? error.name : typeof error);

export class AppError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly category: ErrorCategory,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "AppError";
  }

  /** Client-safe specifics (which fields failed, never their values). */
  details?: unknown;

  withDetails(details: unknown): this {
    this.details = details;
    return this;
  }
}

export const badRequest = (code: string, message: string) => new AppError(400, code, message, "validation");
export const unauthorized = (message = "Authentication required") =>
  new AppError(401, "unauthorized", message, "authentication", { "WWW-Authenticate": "Bearer" });
export const forbidden = (message = "You do not have permission to do this") => new AppError(403, "forbidden", message, "authorization");
export const notFound = (what = "Resource") => new AppError(404, "not_found", `${what} not found`, "not_found");
export const conflict = (code: string, message: string) => new AppError(409, code, message, "conflict");
export const tooManyRequests = (retryAfterSeconds: number) =>
  new AppError(429, "rate_limited", "Too many requests; retry later", "rate_limit", {
    "Retry-After": String(retryAfterSeconds),
  });
/** The tenant already runs as many sessions as its `maxConcurrentSessions` allows; nothing was started. */
export const concurrencyLimit = () =>
  new AppError(429, "concurrency_limit", "The tenant is running as many sessions as it may at once; try again when one ends", "rate_limit");
export const serviceUnavailable = (code: string, message: string) => new AppError(503, code, message, "dependency", { "Retry-After": "5" });

/** The tenant's concurrency limit could not be checked; nothing was started (no caller waits on an API request). */
export const admissionUnavailable = () =>
  serviceUnavailable("admission_unavailable", "The tenant's session limit could not be checked; nothing was started, try again");

/** The session's object's isolate was too far behind to carry one more (durable-objects/call/load-shedding.ts). */
export const overloaded = () => serviceUnavailable("overloaded", "The platform is at capacity here; nothing was started, try again");

/** The API's answer to a session not admitted: at the tenant's limit, the limit unchecked, or shed. */
export const notAdmitted = (admission: "refused" | "unavailable" | "overloaded") =>
  admission === "refused" ? concurrencyLimit() : admission === "overloaded" ? overloaded() : admissionUnavailable();

export interface ErrorBody {
  error: { code: string; message: string; correlationId: string; details?: unknown };
}

export function errorBody(code: string, message: string, correlationId: string, details?: unknown): ErrorBody {
  return { error: { code, message, correlationId, ...(details === undefined ? {} : { details }) } };
}
