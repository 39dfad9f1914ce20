import { buildApp } from "./app";
import { runScheduled } from "./scheduled";

export { CallSession } from "../durable-objects/call-session";
export { ProviderHealthRegistry } from "../durable-objects/provider-health/registry";

const app = buildApp();

export default {
  fetch: app.fetch,
  scheduled: (controller, env, ctx) => ctx.waitUntil(runScheduled(controller, env)),
} satisfies ExportedHandler<Env>;
