import { z } from "@hono/zod-openapi";
import { jsonResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { providerConfigured } from "../shared/provider-endpoints.ts";
import { healthThresholds, PROVIDER_HEALTH_STATES, REGISTRY_NAME } from "../shared/provider-health.ts";
import { parseSettings, providerSchema } from "../shared/settings.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const providerHealthSchema = z
  .object({
    provider: providerSchema,
    state: z.enum(PROVIDER_HEALTH_STATES),
    configured: z.boolean().describe("the deployment has this provider's URL and key (`local` always)"),
    successRate: z.number().nullable().describe("(connect successes + responses) / samples in the window"),
    errorRate: z.number().nullable().describe("mid-session errors / samples in the window"),
    p95LatencyMs: z.number().nullable().describe("p95 of response latency in the window"),
    consecutiveFailures: z.number().int().describe("connect failures since the last connect success"),
    samples: z.number().int().describe("outcomes in the window"),
    lastSuccessAt: z.string().nullable(),
    lastFailureAt: z.string().nullable(),
    nextProbeAt: z.string().nullable().describe("next recovery probe of an offline provider"),
    probeDue: z.boolean().describe("offline and its recovery probe is due: a new session may try it"),
  })
  .openapi("ProviderHealth");

const thresholdsSchema = z
  .object({
    latencyWarningMs: z.number(),
    latencyErrorMs: z.number(),
    minSuccessRate: z.number(),
    offlineAfter: z.number().int(),
    probeSeconds: z.number(),
    minSamples: z.number().int(),
    windowSeconds: z.number(),
    windowOutcomes: z.number().int(),
  })
  .openapi("ProviderHealthThresholds");

const healthRoute = protectedRoute("providers:read", {
  method: "get",
  path: "/api/v1/providers/health",
  tags: ["providers"],
  summary: "Fleet-wide health of each voice AI provider: state, success and error rates, p95 latency, probes",
  responses: { 200: jsonResponse(z.object({ providers: z.array(providerHealthSchema), thresholds: thresholdsSchema }), "Provider health") },
});

export const providerRoutes = publicRouter().openapi(healthRoute, async (c) => {
  const namespace = c.env.PROVIDER_HEALTH;
  const snapshot = await namespace.get(namespace.idFromName(REGISTRY_NAME)).snapshot();
  const order = parseSettings(c.env).values.PROVIDER_ORDER;
  // Every provider in PROVIDER_ORDER, in that order; then any other provider the fleet has reported on.
  const listed = [...snapshot].filter((h) => order.includes(h.provider) || h.samples > 0 || h.consecutiveFailures > 0);
  listed.sort((a, b) => rank(order, a.provider) - rank(order, b.provider));
  return c.json(
    {
      providers: listed.map((h) => ({
        ...h,
        configured: providerConfigured(c.env, h.provider),
        lastSuccessAt: iso(h.lastSuccessAt),
        lastFailureAt: iso(h.lastFailureAt),
        nextProbeAt: iso(h.nextProbeAt),
      })),
      thresholds: healthThresholds(c.env),
    },
    200,
  );
});

function rank(order: readonly string[], provider: string): number {
  const index = order.indexOf(provider);
  return index === -1 ? order.length : index;
}
