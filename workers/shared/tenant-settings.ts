import { z } from "zod";
import { tenantSettings } from "./db/schema.ts";
import type { TenantScope } from "./db/tenant-scope.ts";

/**
 * A tenant's own settings, stored as one JSON document per tenant (`tenant_settings`) and parsed by this one schema
 * on every read and write: a later setting is one more field here with its default, and tenants that never set it
 * read the default with no migration.
 */
const fields = {
  /**
   * The most sessions (phone calls either way and web sessions) the tenant may have live at once; null is no limit.
   * Unlimited by default so that no tenant starts turning callers away on a deploy; the count is kept regardless,
   * so a limit set later holds at once against the true number of live sessions.
   */
  maxConcurrentSessions: z
    .number()
    .int()
    .min(1)
    .max(100_000)
    .nullable()
    .describe("the most sessions live at once (phone calls and web sessions); null for no limit"),
};

export const tenantSettingsSchema = z.object(fields);
export type TenantSettings = z.infer<typeof tenantSettingsSchema>;

/** What a tenant that never set a field reads. */
export const TENANT_SETTINGS_DEFAULTS: TenantSettings = { maxConcurrentSessions: null };

/** A change: any subset of the settings, nothing else (unknown fields are refused). */
export const tenantSettingsChangeSchema = z.strictObject(fields).partial();

/**
 * The tenant's settings, defaults filled in. A stored document that no longer parses (edited by hand) throws: the
 * caller decides how to fail, rather than a silent default standing in for what the admin chose.
 */
export async function readTenantSettings(scope: TenantScope): Promise<TenantSettings> {
  const [row] = (await scope.select(tenantSettings)) as Array<typeof tenantSettings.$inferSelect>;
  return tenantSettingsSchema.parse({ ...TENANT_SETTINGS_DEFAULTS, ...row?.settings });
}

/** Writes the whole (already validated) document; one row per tenant. */
export function writeTenantSettings(scope: TenantScope, settings: TenantSettings, now = Date.now()) {
  return scope
    .insert(tenantSettings, { settings, updatedAt: now })
    .onConflictDoUpdate({ target: tenantSettings.tenantId, set: { settings, updatedAt: now } });
}
