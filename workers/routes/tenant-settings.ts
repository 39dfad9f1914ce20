import { errorResponse, jsonBody, jsonResponse, protectedRoute } from "../http/openapi.ts";
import { issuesOf, publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { AppError, badRequest } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import {
  readTenantSettings,
  storedSettings,
  type TenantSettings,
  tenantSettingsChangeSchema,
  tenantSettingsSchema,
  type VersionedSettings,
  writeTenantSettingsChange,
} from "../shared/tenant-settings.ts";

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
  responses: {
    200: jsonResponse(settingsSchema, "The settings after the change"),
    422: errorResponse("`invalid_escalation`: escalation rules the platform cannot apply (each problem in `details`)"),
  },
});

export const tenantSettingsRoutes = publicRouter()
  .openapi(getRoute, async (c) => c.json(await readTenantSettings(c.get("scope")), 200))
  .openapi(
    patchRoute,
    async (c) => {
      const change = c.req.valid("json");
      if (Object.keys(change).length === 0) throw badRequest("empty_change", "Give at least one setting to change");
      const scope = c.get("scope");
      const fields = Object.keys(change) as (keyof TenantSettings)[];
      const before = await readTenantSettings(scope);
      const whole = tenantSettingsSchema.parse({ ...before, ...change });
      const changed = Object.fromEntries(fields.map((field) => [field, { from: before[field], to: whole[field] }]));
      const [[stored]] = await scope.batch([
        writeTenantSettingsChange(scope, fields, whole),
        auditFromRequest(c, {
          action: "tenant.settings_change",
          targetType: "tenant",
          targetId: scope.tenantId,
          outcome: "success",
          details: changed,
        }),
      ]);
      // With another admin's change that landed first, if one did.
      const after = storedSettings(stored?.settings);
      await pushSettings(c.env, scope.tenantId, { settings: after, version: stored?.version ?? 0 }, c.get("log"));
      return c.json(after, 200);
    },
    rejectChange,
  );

/**
 * A malformed change is 400 `validation_failed`, like every body; escalation rules that are well-formed JSON but not
 * rules the platform can apply (a threshold outside −1…1, a keyword that is no word, no rule at all) are 422
 * `invalid_escalation`, each problem named by path.
 */
function rejectChange(result: { success: true } | { success: false; error: Parameters<typeof issuesOf>[0] }): undefined {
  if (result.success) return undefined;
  const issues = issuesOf(result.error);
  const escalation = issues.filter((issue) => issue.path === "escalation" || issue.path.startsWith("escalation."));
  if (escalation.length > 0 && escalation.length === issues.length) {
    throw new AppError(422, "invalid_escalation", "The escalation rules are not valid", "validation").withDetails(escalation);
  }
  throw badRequest("validation_failed", "Request failed validation").withDetails(issues);
}

/**
 * The tenant's admission object holds the settings so that calls are admitted, and start with the settings they
 * need, without a D1 read; it takes the new ones now. If it cannot be told, it re-reads D1 within its freshness
 * window (SETTINGS_FRESH_MS), so the change still holds.
 */
async function pushSettings(env: Env, tenantId: string, settings: VersionedSettings, log: Logger): Promise<void> {
  try {
    await env.TENANT_ADMISSION.get(env.TENANT_ADMISSION.idFromName(tenantId)).setSettings(settings);
  } catch (error) {
    log.warn("admission.settings_push_failed", { error });
  }
}
