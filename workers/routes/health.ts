import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../http/context.ts";
import { publicRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { authenticate, bearerCredential } from "../identity/middleware.ts";
import { constantTimeEqualText } from "../shared/constant-time.ts";
import { healthProblems, parseSettings } from "../shared/settings.ts";

const checkSchema = z.object({ ok: z.boolean(), detail: z.string().optional() });
const healthSchema = z.object({ status: z.enum(["ok", "degraded"]), checks: z.record(z.string(), checkSchema) }).openapi("Health");

const route = publicRoute({
  method: "get",
  path: "/health",
  tags: ["platform"],
  summary: "Liveness and readiness: settings valid, D1 and KV reachable",
  responses: {
    200: { description: "Everything the platform needs is available", content: { "application/json": { schema: healthSchema } } },
    503: {
      description: "A check failed; `checks` names it (why, only to the metrics token or an admin)",
      content: { "application/json": { schema: healthSchema } },
    },
  },
});

type Check = z.infer<typeof checkSchema>;

async function probe(run: () => Promise<unknown>): Promise<Check> {
  try {
    await run();
    return { ok: true };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.name : "unreachable" };
  }
}

/**
 * Whether the caller may read why a check failed (which settings are missing or malformed): the metrics token's
 * holder (a monitor) or an authenticated admin. Anyone else learns only which checks failed.
 */
async function mayReadDetails(c: Context<AppEnv>): Promise<boolean> {
  const credential = bearerCredential(c.req.header("Authorization"));
  if (!credential) return false;
  const metricsToken = parseSettings(c.env).values.METRICS_TOKEN;
  if (metricsToken && constantTimeEqualText(credential, metricsToken)) return true;
  try {
    return (await authenticate(c, credential)).role === "admin";
  } catch {
    return false;
  }
}

export const healthRoutes = publicRouter().openapi(route, async (c) => {
  const problems = healthProblems(c.env);
  const [d1, kv] = await Promise.all([probe(() => c.env.DB.prepare("SELECT 1").first()), probe(() => c.env.CACHE.get("health:probe"))]);
  const settings: Check = problems.length
    ? { ok: false, detail: problems.map((p) => `${p.setting} ${p.problem}`).join("; ") }
    : { ok: true };
  const detailed = { settings, d1, kv };
  const healthy = Object.values(detailed).every((check) => check.ok);
  if (!healthy) c.get("log").warn("health.degraded", { checks: detailed });
  const checks = healthy || (await mayReadDetails(c)) ? detailed : { settings: { ok: settings.ok }, d1: { ok: d1.ok }, kv: { ok: kv.ok } };
  return healthy ? c.json({ status: "ok" as const, checks }, 200) : c.json({ status: "degraded" as const, checks }, 503);
});
