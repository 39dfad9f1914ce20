import { buildApp } from "./app.ts";
import { runScheduled } from "./scheduled.ts";

export { TenantAdmission } from "../durable-objects/admission/tenant-admission.ts";
export { CallSession } from "../durable-objects/call-session.ts";
export { MetricsAggregator } from "../durable-objects/metrics/metrics-aggregator.ts";
export { ProviderHealthRegistry } from "../durable-objects/provider-health/registry.ts";

const app = buildApp();

export default {
  fetch: app.fetch,
  scheduled: (controller, env, ctx) => ctx.waitUntil(runScheduled(controller, env)),
} satisfies ExportedHandler<Env>;
