import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { metrics, metricsDue, pushMetrics } from "../shared/observability/metrics.ts";
import type { AppEnv } from "./context.ts";

/**
 * Counts and times every request under its route template (`/api/v1/calls/:id`, never the path: bounded labels, no
 * ids or credentials), and sends the isolate's metrics on when they are due, after the response (`waitUntil`).
 */
export const requestMetrics: MiddlewareHandler<AppEnv> = async (c, next) => {
  const started = Date.now();
  await next();
  const template = routePath(c);
  const route = template && !template.includes("*") ? template : "unmatched";
  const method = c.req.method;
  metrics.count("http_requests_total", { method, route, status: String(c.res.status) });
  metrics.observe("http_request_duration_seconds", { method, route }, (Date.now() - started) / 1000);
  if (metricsDue()) c.executionCtx.waitUntil(pushMetrics(c.env));
};
