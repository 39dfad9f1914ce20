import { OpenAPIHono } from "@hono/zod-openapi";
import { badRequest } from "../shared/errors.ts";
import type { AppEnv } from "./context.ts";

/**
 * Every router is an OpenAPIHono whose validation failures become the platform's 400 error shape. Issues are
 * reported by path and message only: the offending values are never echoed back.
 */
export function publicRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw badRequest("validation_failed", "Request failed validation").withDetails(issuesOf(result.error));
    },
  });
}

/** A validation failure's issues as error details: path and message, never the value. */
export function issuesOf(error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> }) {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join("."), message: issue.message }));
}
