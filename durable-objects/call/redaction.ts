import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import { MASKED_DIGIT, maskPii, type PiiRedaction } from "../../workers/shared/pii.ts";
import { readTenantSettings, type TenantSettings } from "../../workers/shared/tenant-settings.ts";

/** The settings as read at the call's start, kept in the object's storage for a restarted object. */
const SETTINGS_KEY = "tenant_settings";

/** Longer than a D1 read takes; the provider's first dial waits for it (with the caller's context), so it stays short. */
export const REDACTION_LOOKUP_TIMEOUT_MS = 750;

/**
 * The call's side of the tenant's `piiRedaction`: learned once when the conversation starts (read with the caller's
 * context, before the provider is dialled, never on the media path), then applied per transcript line and per DTMF
 * digit. Fails closed: until the setting is known — not yet read, D1 slow or failing, a stored document that no
 * longer parses — everything is masked, so a tenant that asked for masking never has a plain line stored.
 *
 * The same single read is the call's copy of the tenant's other settings (`settings`: escalation rules), so no part
 * adds a D1 trip of its own on the answering path. What was read is kept in the object's storage (one write per
 * call, at its start): after an eviction the digits and lines that arrive before a new read could finish are
 * treated as the tenant asked, not masked for want of the setting, and the rules still apply.
 */
export class Redaction {
  private mode: PiiRedaction | null;
  private learned: TenantSettings | null;
  private learning: Promise<void> | null = null;

  constructor(private readonly storage: SyncKvStorage) {
    this.learned = storage.get<TenantSettings>(SETTINGS_KEY) ?? null;
    this.mode = this.learned?.piiRedaction ?? null;
  }

  /**
   * The settings as the tenant's admission object handed them over with the session's slot: no D1 read needed.
   * Settings already learned (this call's, kept across an eviction) stay.
   */
  adopt(settings: TenantSettings | null): void {
    if (!settings || this.learned !== null) return;
    this.mode = settings.piiRedaction;
    this.learned = settings;
    this.storage.put(SETTINGS_KEY, settings);
  }

  /** Reads the tenant's setting once (later calls share the first); settles within the timeout and never rejects. */
  learn(env: Env, tenantId: string, timeoutMs = REDACTION_LOOKUP_TIMEOUT_MS): Promise<void> {
    if (this.learning) return this.learning;
    if (this.learned !== null) {
      this.learning = Promise.resolve();
      return this.learning;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    const read = readTenantSettings(tenantScopeFor(env, tenantId)).then(
      (settings) => {
        this.mode = settings.piiRedaction;
        this.learned = settings;
        this.storage.put(SETTINGS_KEY, settings);
      },
      () => undefined,
    );
    this.learning = Promise.race([read, timeout]).finally(() => clearTimeout(timer));
    return this.learning;
  }

  /** The tenant's settings as read when the conversation started; null until read, or when they could not be. */
  get settings(): TenantSettings | null {
    return this.learned;
  }

  /** A transcript line as it may be stored and shown. */
  text(text: string): string {
    return this.mode === "off" ? text : maskPii(text);
  }

  /** A DTMF digit as it may be stored and shown (the provider still gets the real one). */
  digit(digit: string): string {
    return this.mode === "off" ? digit : MASKED_DIGIT;
  }
}
