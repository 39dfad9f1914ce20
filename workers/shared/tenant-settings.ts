import { sql } from "drizzle-orm";
import { z } from "zod";
import { RECORDING_MODES, tenantSettings } from "./db/schema.ts";
import type { TenantScope } from "./db/tenant-scope.ts";
import { escalationSettingsSchema } from "./escalation.ts";
import { maskerFor, maskPii, piiRedactionSchema } from "./pii.ts";

/**
 * A tenant's own settings, stored as one JSON document per tenant (`tenant_settings`) and parsed by this one schema
 * on every read and write: a later setting is one more field here with its default, and tenants that never set it
 * read the default with no migration.
 */
const fields = {
  /**
   * ISO 4217 code of the shop's money: every amount the business engine stores is an integer in this currency's
   * minor unit (paise for INR, cents for USD, none for JPY). Changing it does not convert stored amounts.
   */
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, "an ISO 4217 code such as INR or USD")
    .refine((code) => supportedCurrency(code), "a currency this platform knows")
    .describe("ISO 4217 currency of every amount (integers in its minor unit)"),
  /** IANA zone the shop lives in: "by Friday" and "tomorrow" in a reminder are read in it. */
  timezone: z
    .string()
    .max(64)
    .refine((zone) => supportedTimeZone(zone), "an IANA time zone such as Asia/Kolkata")
    .describe("IANA time zone for dates people say (reminders)"),
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
  /**
   * The shop's own WhatsApp numbers (E.164): only they may create invoices, record payments, set reminders and read
   * other customers' accounts over WhatsApp. Anyone else is at most a customer asking about their own account.
   * Empty by default: nobody runs the books over WhatsApp until an admin names who may.
   */
  whatsappOperators: z
    .array(z.string().regex(/^\+[1-9]\d{6,14}$/, "an E.164 number such as +919876543210"))
    .max(50)
    .describe("E.164 numbers that may run the books over WhatsApp (create invoices, record payments)"),
  /**
   * "mask": card numbers, national ids, emails and phone numbers are masked in transcripts (before they are stored
   * or shown on /live), DTMF digits, WhatsApp message bodies and privacy exports. Off by default: turning it on
   * is the tenant's choice, and it changes what its agents and exports show.
   */
  piiRedaction: piiRedactionSchema.describe(
    "mask personal data (cards, national ids, emails, phones, DTMF digits) in stored transcripts, messages and exports",
  ),
  /**
   * When a live conversation goes to a person (workers/shared/escalation.ts): negative caller turns in a row,
   * keywords, failed tool calls; each raises an `escalation` event on /live, is recorded, and with `transferTo`
   * transfers a phone call. Off (null) by default: escalating, let alone transferring, is the tenant's choice.
   */
  escalation: escalationSettingsSchema
    .nullable()
    .describe("escalation rules (sentimentBelow + sentimentTurns, keywords, toolFailures, transferTo); null for none"),
  /**
   * "on": every session (phone calls and web sessions) is recorded as a two-channel WAV (README "Recordings"); a phone
   * number's own `recording` (phone_numbers) wins for calls to it. Off by default: recording people is the tenant's
   * decision, and its consent duty with it.
   */
  recording: z.enum(RECORDING_MODES).describe("record every session as a two-channel WAV (caller left, agent right)"),
  /**
   * What a phone caller hears before the agent speaks when recording is on (Twilio `<Say>` before the stream). Null:
   * no announcement (the tenant informs callers some other way).
   */
  consentMessage: z
    .string()
    .trim()
    .min(1)
    .max(500)
    .nullable()
    .describe("said to phone callers before the agent when recording is on; null for none"),
  /**
   * Days a session's transcript, analysis and recording are kept after it ended; the daily retention run deletes
   * them past that (the session's row stays). Null keeps them: deleting a tenant's history is its admin's choice.
   */
  retentionDays: z
    .number()
    .int()
    .min(1)
    .max(36_500)
    .nullable()
    .describe("days transcripts, analysis and recordings are kept after a session ends; null keeps them"),
};

export const tenantSettingsSchema = z.object(fields);
export type TenantSettings = z.infer<typeof tenantSettingsSchema>;

/** What a tenant that never set a field reads. */
export const TENANT_SETTINGS_DEFAULTS: TenantSettings = {
  currency: "INR",
  timezone: "Asia/Kolkata",
  maxConcurrentSessions: null,
  whatsappOperators: [],
  piiRedaction: "off",
  escalation: null,
  recording: "off",
  consentMessage: null,
  retentionDays: null,
};

/** Digits after the point in a currency's minor unit (2 for INR and USD, 0 for JPY), from the runtime's ICU data. */
export function currencyMinorDigits(currency: string): number {
  return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
}

function supportedCurrency(code: string): boolean {
  return Intl.supportedValuesOf("currency").includes(code);
}

function supportedTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** A change: any subset of the settings, nothing else (unknown fields are refused). */
export const tenantSettingsChangeSchema = z.strictObject(fields).partial();

/**
 * The tenant's settings, defaults filled in. A stored document that no longer parses (edited by hand) throws: the
 * caller decides how to fail, rather than a silent default standing in for what the admin chose.
 */
export async function readTenantSettings(scope: TenantScope): Promise<TenantSettings> {
  return (await readVersionedSettings(scope)).settings;
}

/**
 * The settings with their version: the row's `updated_at`, which every change through the API moves forward (0: no
 * row). Whoever keeps a copy (the admission object) keeps the newest of the copies it is given or reads.
 */
export interface VersionedSettings {
  settings: TenantSettings;
  version: number;
}

export async function readVersionedSettings(scope: TenantScope): Promise<VersionedSettings> {
  const [row] = (await scope.select(tenantSettings)) as Array<typeof tenantSettings.$inferSelect>;
  return { settings: storedSettings(row?.settings), version: row?.updatedAt ?? 0 };
}

/** A stored document (or none) as the settings it means: defaults for what it does not name. */
export function storedSettings(stored: Record<string, unknown> | undefined): TenantSettings {
  return tenantSettingsSchema.parse({ ...TENANT_SETTINGS_DEFAULTS, ...stored });
}

/**
 * Writes a change's fields into the stored document in one statement, returning the document as stored: each field
 * is set on what the row holds when the statement runs, so two changes made at once both land (a read, then a write
 * of the whole document, lost the first one's fields). A tenant with no row yet gets `whole`: the defaults with the
 * change, already validated, as are the change's values taken from it.
 */
export function writeTenantSettingsChange(
  scope: TenantScope,
  fields: readonly (keyof TenantSettings)[],
  whole: TenantSettings,
  now = Date.now(),
) {
  const assignments = fields.map((field) => sql`${`$.${JSON.stringify(field)}`}, json(${JSON.stringify(whole[field])})`);
  return scope
    .insert(tenantSettings, { settings: whole, updatedAt: now })
    .onConflictDoUpdate({
      target: tenantSettings.tenantId,
      set: {
        settings: sql`json_set(${tenantSettings.settings}, ${sql.join(assignments, sql`, `)})`,
        // The document's version: forward by at least one, whatever this isolate's clock says.
        updatedAt: sql`max(${tenantSettings.updatedAt} + 1, ${now})`,
      },
    })
    .returning({ settings: tenantSettings.settings, version: tenantSettings.updatedAt });
}

/**
 * The tenant's PII masker (identity when `piiRedaction` is off). Fails closed: settings that cannot be read (D1
 * failing, a document that no longer parses) mask, so a tenant that asked for masking never has a plain copy stored.
 */
export async function readPiiMasker(scope: TenantScope): Promise<(text: string) => string> {
  try {
    return maskerFor((await readTenantSettings(scope)).piiRedaction);
  } catch {
    return maskPii;
  }
}
