import { handlerFor } from "./handler.ts";

export { TenantAdmission } from "../durable-objects/admission/tenant-admission.ts";
export { CallSession } from "../durable-objects/call-session.ts";
export { MetricsAggregator } from "../durable-objects/metrics/metrics-aggregator.ts";
export { ProviderHealthRegistry } from "../durable-objects/provider-health/registry.ts";
export { ReminderScheduler } from "../durable-objects/reminders/reminder-scheduler.ts";

export default {
  fetch: (request: Request, env: Env, ctx: ExecutionContext) => handlerFor(env).fetch(request, env, ctx),
  scheduled: (controller, env, ctx) => handlerFor(env).scheduled(controller, env, ctx),
} satisfies ExportedHandler<Env>;
