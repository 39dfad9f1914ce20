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
      if (!result.success) {
        const details = result.error.issues.map((issue) => ({ path: issue.path.join("."), message: issue.message }));
        throw badRequest("validation_failed", "Request failed validation").withDetails(details);
      }
    },
  });
}
