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
 * error-reporting.ts). The objects are not wrapped: the SDK's object instrumentation wraps every handler, the per-frame
 * WebSocket messages included, and an object's errors reach the Worker's RPC calls anyway.
 */
const reported = withSentry((env: Env) => errorReportingOptions(env), handler);

/**
 * Without a DSN the wrapper is not run at all: disabled, the SDK still opens a scope and a span per request and wraps
 * the env's bindings, D1 included (each statement sanitized for a span), which the load bench measured at ~18 ms of
 * CPU a call. Settings change only with a deploy, so the choice is made once per env.
 */
const reporting = new WeakMap<Env, boolean>();
function reportingOn(env: Env): boolean {
  let on = reporting.get(env);
  if (on === undefined) {
    on = errorReportingOptions(env).enabled;
    reporting.set(env, on);
  }
  return on;
}

export default {
  fetch: (request: Request, env: Env, ctx: ExecutionContext) => (reportingOn(env) ? reported.fetch! : handler.fetch)(request, env, ctx),
  scheduled: (controller, env, ctx) => (reportingOn(env) ? reported.scheduled! : handler.scheduled)(controller, env, ctx),
} satisfies ExportedHandler<Env>;
