import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import { MASKED_DIGIT, maskPii, type PiiRedaction } from "../../workers/shared/pii.ts";
import { readTenantSettings } from "../../workers/shared/tenant-settings.ts";

/** The setting as learned, kept in the object's storage: a restarted object masks exactly as before, at once. */
const MODE_KEY = "pii_redaction";

/** Longer than a D1 read takes; the provider's first dial waits for it (with the caller's context), so it stays short. */
export const REDACTION_LOOKUP_TIMEOUT_MS = 750;

/**
 * The call's side of the tenant's `piiRedaction`: learned once when the conversation starts (read with the caller's
 * context, before the provider is dialled, never on the media path), then applied per transcript line and per DTMF
 * digit. Fails closed: until the setting is known — not yet read, D1 slow or failing, a stored document that no
 * longer parses — everything is masked, so a tenant that asked for masking never has a plain line stored. What was
 * learned is kept (one write per call, at its start): after an eviction the digits and lines that arrive before a
 * new read would finish are treated as the tenant asked, not masked for want of the setting.
 */
export class Redaction {
  private mode: PiiRedaction | null;
  private learning: Promise<void> | null = null;

  constructor(private readonly storage: SyncKvStorage) {
    this.mode = storage.get<PiiRedaction>(MODE_KEY) ?? null;
  }

  /** Reads the tenant's setting once (later calls share the first); settles within the timeout and never rejects. */
  learn(env: Env, tenantId: string, timeoutMs = REDACTION_LOOKUP_TIMEOUT_MS): Promise<void> {
    if (this.learning) return this.learning;
    if (this.mode !== null) {
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
        this.storage.put(MODE_KEY, this.mode);
      },
      () => undefined,
    );
    this.learning = Promise.race([read, timeout]).finally(() => clearTimeout(timer));
    return this.learning;
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
