import { withSentry } from "@sentry/cloudflare";
import { buildApp } from "./app.ts";
import { runScheduled } from "./scheduled.ts";
import { errorReportingOptions } from "./shared/error-reporting.ts";

/** The Worker's own handlers: the Hono app and the cron. */
export const bareHandler = {
  fetch: buildApp().fetch,
  scheduled: (controller, env, ctx) => ctx.waitUntil(runScheduled(controller, env)),
} satisfies ExportedHandler<Env>;

/**
 * The same, with unhandled errors (requests, the cron) reported to Sentry (scrubbed: see error-reporting.ts). The
 * objects are not wrapped: the SDK's object instrumentation wraps every handler, the per-frame WebSocket messages
 * included, and an object's errors reach the Worker's RPC calls anyway. Given a copy, since the SDK instruments the
 * handler object it is given in place.
 */
const reportedHandler = withSentry((env: Env) => errorReportingOptions(env), { ...bareHandler });

const reporting = new WeakMap<Env, boolean>();

/**
 * The handlers a request runs through: Sentry's only when `SENTRY_DSN` is set (and well formed). Disabled, the SDK
 * would still open a scope and a span per request and wrap the env's bindings, every D1 statement sanitized for a
 * span — ~18 ms of CPU a call in the load bench's profile. Settings change only with a deploy: decided once per env.
 */
export function handlerFor(env: Env): typeof bareHandler {
  let on = reporting.get(env);
  if (on === undefined) {
    on = errorReportingOptions(env).enabled;
    reporting.set(env, on);
  }
  return on ? reportedHandler : bareHandler;
}
