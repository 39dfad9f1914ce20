import { Hono } from "hono";
import type { AppEnv } from "../http/context.ts";
import { bearerCredential } from "../identity/middleware.ts";
import { constantTimeEqual } from "../shared/constant-time.ts";
import { unauthorized } from "../shared/errors.ts";
import { renderExposition } from "../shared/observability/exposition.ts";
import { pushMetrics, scrapeFleet } from "../shared/observability/metrics.ts";
import { requireSettings } from "../shared/settings.ts";

const APP_VERSION = "0.1.0";

const digest = async (text: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));

/**
 * `GET /metrics`: the fleet's metrics in the Prometheus text format, for the bearer of METRICS_TOKEN (compared as
 * SHA-256 digests in constant time, so neither its content nor its length shows). The scraping isolate's own
 * deltas are pushed first, so what this request's isolate counted is in the answer.
 */
export const metricsRoutes = new Hono<AppEnv>().get("/metrics", async (c) => {
  const { METRICS_TOKEN } = requireSettings(c.env, "metrics");
  const presented = bearerCredential(c.req.header("Authorization"));
  if (!presented || !constantTimeEqual(await digest(presented), await digest(METRICS_TOKEN))) throw unauthorized();
  await pushMetrics(c.env);
  const state = await scrapeFleet(c.env);
  state.gauges[`app_info{version="${APP_VERSION}"}`] = 1;
  return c.body(renderExposition(state), 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
});
