import { withSentry } from "@sentry/cloudflare";
import { buildApp } from "./app.ts";
import { runScheduled } from "./scheduled.ts";
import { errorReportingOptions } from "./shared/error-reporting.ts";

export { TenantAdmission } from "../durable-objects/admission/tenant-admission.ts";
export { CallSession } from "../durable-objects/call-session.ts";
export { MetricsAggregator } from "../durable-objects/metrics/metrics-aggregator.ts";
export { ProviderHealthRegistry } from "../durable-objects/provider-health/registry.ts";
export { ReminderScheduler } from "../durable-objects/reminders/reminder-scheduler.ts";

const app = buildApp();

const handler = {
  fetch: app.fetch,
  scheduled: (controller, env, ctx) => ctx.waitUntil(runScheduled(controller, env)),
} satisfies ExportedHandler<Env>;

/**
 * Unhandled errors of the Worker (requests, the cron) go to Sentry when `SENTRY_DSN` is set (scrubbed: see
 * error-reporting.ts); without it the SDK is disabled. The objects are not wrapped: the SDK's object instrumentation
 * wraps every handler, the per-frame WebSocket messages included, and an object's errors reach the Worker's RPC
 * calls anyway.
 */
export default withSentry((env: Env) => errorReportingOptions(env), handler);
