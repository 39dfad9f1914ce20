import { createRoute, type RouteConfig, z } from "@hono/zod-openapi";
import { requireAuth } from "../identity/middleware.ts";
import type { Permission } from "../identity/permissions.ts";

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      correlationId: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .openapi("Error");

export const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: errorSchema } },
});

/** The failures any authenticated route can answer with, documented once. */
const AUTHED_ERRORS = {
  400: errorResponse("Malformed request or failed validation"),
  401: errorResponse("Missing, invalid, expired or revoked credential"),
  403: errorResponse("The caller's role lacks the permission"),
  413: errorResponse("Body too large"),
  415: errorResponse("Body is not JSON"),
  429: errorResponse("Rate limited; see Retry-After"),
} as const;

/** For routes that start a session: the tenant's concurrency limit answers 429 too. */
export const concurrencyLimitResponse = {
  429: errorResponse("Rate limited (see Retry-After), or the tenant is at its concurrency limit (`concurrency_limit`)"),
} as const;
export const notFoundResponse = { 404: errorResponse("Not found (or belongs to another tenant)") } as const;
export const conflictResponse = { 409: errorResponse("Conflicts with the current state") } as const;

/**
 * A route that requires `permission`: authentication, rate limiting and the role check run before the handler,
 * and the permission is recorded in the OpenAPI document (`x-permission`) where the role-matrix test reads it.
 */
export function protectedRoute<const R extends Omit<RouteConfig, "middleware" | "security">>(permission: Permission, config: R) {
  return createRoute({
    ...config,
    responses: { ...AUTHED_ERRORS, ...config.responses },
    security: [{ bearer: [] }],
    "x-permission": permission,
    middleware: [requireAuth(permission)] as const,
  });
}

/** A route anyone may call (login, refresh, JWKS, health); marked so the role-matrix test knows it is deliberate. */
export function publicRoute<const R extends Omit<RouteConfig, "middleware" | "security">>(config: R) {
  return createRoute({
    ...config,
    responses: { 400: errorResponse("Malformed request"), 429: errorResponse("Rate limited"), ...config.responses },
    "x-permission": "public",
  });
}

/** Strict JSON request body: unknown fields are rejected, not ignored. */
export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return { body: { required: true, description, content: { "application/json": { schema } } } } as const;
}

export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } } as const;
}
