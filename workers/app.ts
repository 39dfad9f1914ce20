import { Scalar } from "@scalar/hono-api-reference";
import { carriers } from "./carriers/registry.ts";
import { jsonBodyGuard } from "./http/body-guard.ts";
import { correlation } from "./http/correlation.ts";
import { handleError, handleNotFound } from "./http/error-handler.ts";
import { requestMetrics } from "./http/request-metrics.ts";
import { publicRouter } from "./http/router.ts";
import { apiCors, securityHeaders } from "./http/security-headers.ts";
import { analyticsRoutes } from "./routes/analytics.ts";
import { apiKeyRoutes } from "./routes/api-keys.ts";
import { auditLogRoutes } from "./routes/audit-log.ts";
import { authRoutes } from "./routes/auth.ts";
import { callControlRoutes } from "./routes/call-control.ts";
import { callReadRoutes } from "./routes/calls.ts";
import { consoleRoutes } from "./routes/console.ts";
import { customerSearchRoutes } from "./routes/customer-search.ts";
import { customerRoutes } from "./routes/customers.ts";
import { healthRoutes } from "./routes/health.ts";
import { invoiceRoutes } from "./routes/invoices.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { paymentRoutes } from "./routes/payments.ts";
import { phoneNumberRoutes } from "./routes/phone-numbers.ts";
import { privacyRoutes } from "./routes/privacy.ts";
import { productRoutes } from "./routes/products.ts";
import { promptRoutes } from "./routes/prompts.ts";
import { providerRoutes } from "./routes/providers.ts";
import { recordingRoutes } from "./routes/recordings.ts";
import { reminderRoutes } from "./routes/reminders.ts";
import { sessionAnalysisRoutes } from "./routes/session-analysis.ts";
import { sessionEndRoutes } from "./routes/session-end.ts";
import { sessionSwitchingRoutes } from "./routes/session-switching.ts";
import { sessionReadRoutes } from "./routes/sessions.ts";
import { sessionLiveRoutes } from "./routes/sessions-live.ts";
import { tenantSettingsRoutes } from "./routes/tenant-settings.ts";
import { userRoutes } from "./routes/users.ts";
import { errorBody } from "./shared/errors.ts";
import { whatsappRoutes } from "./whatsapp/routes.ts";

/**
 * The Worker's HTTP surface: one Hono app, middleware first (correlation id, body guard), then every router.
 * Routers are grouped by who calls them; the OpenAPI document is generated from their schemas.
 */
export function buildApp() {
  const app = publicRouter();
  app.use("*", correlation);
  app.use("*", requestMetrics);
  app.use("*", securityHeaders);
  app.use("/api/*", apiCors);
  app.use("/api/*", jsonBodyGuard);
  // Carrier routes speak the carriers' conventions (TwiML, plain status codes), so they sit outside the OpenAPI set.
  for (const carrier of Object.values(carriers)) app.route("/", carrier.routes);
  // Prometheus's format, not JSON: outside the OpenAPI set too.
  app.route("/", metricsRoutes);
  // Meta's conventions (plain-text challenge, signed raw bodies): outside the OpenAPI set and the JSON body guard.
  app.route("/", whatsappRoutes);

  for (const routes of [
    healthRoutes,
    authRoutes,
    userRoutes,
    apiKeyRoutes,
    auditLogRoutes,
    phoneNumberRoutes,
    // Ahead of any customers router: Hono tries routes in this order, and `/customers/search` must win over `/customers/{id}`.
    customerSearchRoutes,
    callReadRoutes,
    callControlRoutes,
    sessionReadRoutes,
    sessionSwitchingRoutes,
    sessionEndRoutes,
    sessionAnalysisRoutes,
    analyticsRoutes,
    recordingRoutes,
    sessionLiveRoutes,
    providerRoutes,
    tenantSettingsRoutes,
    promptRoutes,
    customerRoutes,
    productRoutes,
    invoiceRoutes,
    paymentRoutes,
    reminderRoutes,
    privacyRoutes,
  ])
    app.route("/", routes);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "An access token (JWT) from /api/v1/auth/login, or an API key",
  });
  app.doc31("/api/v1/openapi.json", {
    openapi: "3.1.0",
    info: { title: "Switchboard API", version: "1.0.0", description: "AI voice calls at the edge." },
  });
  // The web console's pages: HTML, not JSON, so outside the OpenAPI set.
  app.route("/", consoleRoutes);
  app.get("/docs", Scalar({ url: "/api/v1/openapi.json", pageTitle: "Switchboard API" }));

  app.notFound((c) => {
    const allow = allowedMethods(app.routes, c.req.path);
    if (allow.length === 0) return handleNotFound(c);
    const message = `${c.req.method} is not allowed here`;
    return c.json(errorBody("method_not_allowed", message, c.get("correlationId")), 405, { Allow: allow.join(", ") });
  });
  app.onError(handleError);
  return app;
}

type RouteEntry = { method: string; path: string };
const patterns = new Map<string, RegExp>();

/** Methods registered for a path, so a wrong method answers 405 rather than 404. */
function allowedMethods(routes: readonly RouteEntry[], path: string): string[] {
  const methods = new Set<string>();
  for (const route of routes) {
    if (route.method === "ALL") continue;
    let pattern = patterns.get(route.path);
    if (!pattern) {
      const source = route.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\/:[^/]+/g, "/[^/]+");
      pattern = new RegExp(`^${source}$`);
      patterns.set(route.path, pattern);
    }
    if (pattern.test(path)) methods.add(route.method);
  }
  return [...methods];
}
