import { api } from "./api.ts";

/** The tenant's settings (GET /api/v1/tenant/settings), as every role may read them. */
export interface TenantSettings {
  currency: string;
  timezone: string;
  maxConcurrentSessions: number | null;
  whatsappOperators: string[];
  piiRedaction: "off" | "mask";
  escalation: EscalationSettings | null;
  recording: "off" | "on";
  consentMessage: string | null;
  retentionDays: number | null;
}

export interface EscalationSettings {
  sentimentBelow?: number;
  sentimentTurns?: number;
  keywords?: string[];
  toolFailures?: number;
  transferTo?: string | null;
}

let cached: Promise<TenantSettings> | null = null;

/** Read once per page load (money pages need the currency); a save through the settings page replaces it. */
export function tenantSettings(): Promise<TenantSettings> {
  cached ??= api<TenantSettings>("GET", "/api/v1/tenant/settings").catch((error: unknown) => {
    cached = null;
    throw error;
  });
  return cached;
}

export function rememberTenantSettings(settings: TenantSettings): void {
  cached = Promise.resolve(settings);
}
