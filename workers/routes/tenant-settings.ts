import { jsonBody, jsonResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { badRequest } from "../shared/errors.ts";
import { readTenantSettings, tenantSettingsChangeSchema, tenantSettingsSchema, writeTenantSettings } from "../shared/tenant-settings.ts";

/**
 * `GET/PATCH /api/v1/tenant/settings`: the caller's tenant's own settings (workers/shared/tenant-settings.ts). Every
 * role reads them (nothing in them is secret, and every screen needs some: a limit, later the currency and time
 * zone); only admins change them, and every change is audited with what it changed from and to.
 */
const settingsSchema = tenantSettingsSchema.openapi("TenantSettings");

const getRoute = protectedRoute("tenant_settings:read", {
  method: "get",
  path: "/api/v1/tenant/settings",
  tags: ["tenant"],
  summary: "The tenant's settings (defaults filled in)",
  responses: { 200: jsonResponse(settingsSchema, "The settings") },
});

const patchRoute = protectedRoute("tenant_settings:write", {
  method: "patch",
  path: "/api/v1/tenant/settings",
  tags: ["tenant"],
  summary: "Change some of the tenant's settings; the others keep their values",
  request: jsonBody(tenantSettingsChangeSchema.openapi("TenantSettingsChange")),
  responses: { 200: jsonResponse(settingsSchema, "The settings after the change") },
});

export const tenantSettingsRoutes = publicRouter()
  .openapi(getRoute, async (c) => c.json(await readTenantSettings(c.get("scope")), 200))
  .openapi(patchRoute, async (c) => {
    const change = c.req.valid("json");
    if (Object.keys(change).length === 0) throw badRequest("empty_change", "Give at least one setting to change");
    const scope = c.get("scope");
    const before = await readTenantSettings(scope);
    const after = tenantSettingsSchema.parse({ ...before, ...change });
    const changed = Object.fromEntries(
      Object.keys(change).map((key) => [key, { from: before[key as keyof typeof before], to: after[key as keyof typeof after] }]),
    );
    await scope.batch([
      writeTenantSettings(scope, after),
      auditFromRequest(c, {
        action: "tenant.settings_change",
        targetType: "tenant",
        targetId: scope.tenantId,
        outcome: "success",
        details: changed,
      }),
    ]);
    return c.json(after, 200);
  });
