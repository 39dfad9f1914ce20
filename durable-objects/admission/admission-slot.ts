import type { Logger } from "../../workers/shared/logger.ts";
import type { TenantSettings } from "../../workers/shared/tenant-settings.ts";

/** The failure reason (and the API's error code) of a session refused at its tenant's concurrency limit. */
export const CONCURRENCY_LIMIT = "concurrency_limit";

/** `admitted`; `refused` at the tenant's limit; `unavailable` when the limit or the count could not be read. */
export type Admission = "admitted" | "refused" | "unavailable";

/** A release that failed this many times is left to the tenant's admission object, which frees it by its lease. */
const MAX_RELEASE_ATTEMPTS = 12;
/** The wait between two tries of a release (a minute of tries in all, then the lease takes over). */
export const RELEASE_RETRY_MS = 5_000;
const KEY = "admission_slot";

interface StoredSlot {
  tenantId: string;
  sessionId: string;
  held: boolean;
  releaseAttempts: number;
}

/**
 * The session's slot in its tenant's admission object (durable-objects/admission/tenant-admission.ts): taken before
 * the session starts, given back when it ends. Whether it is held is stored, so an evicted object still gives it
 * back; a release that cannot reach the admission object is retried (from the object's alarm) and never holds up the
 * session's own ending.
 */
export class AdmissionSlot {
  private slot: StoredSlot | null;
  private releasing: Promise<boolean> | null = null;
  /** A release's change not yet written (`release(…, { withNextWrite: true })`). */
  private unsaved = false;
  /** The tenant's settings that came with the slot (memory only: the session's object keeps what it needs of them). */
  settings: TenantSettings | null = null;

  constructor(
    private readonly kv: SyncKvStorage,
    private readonly env: Env,
  ) {
    this.slot = kv.get<StoredSlot>(KEY) ?? null;
  }

  /** Asks for a slot under the tenant's `maxConcurrentSessions` (which the tenant's admission object holds). */
  async acquire(tenantId: string, sessionId: string, log: Logger): Promise<Admission> {
    if (this.slot?.held) return "admitted";
    try {
      const decision = await admissionObject(this.env, tenantId).acquire(tenantId, sessionId);
      if (!decision.admitted && "unchecked" in decision) {
        log.warn("admission.unavailable", { reason: decision.unchecked });
        return "unavailable";
      }
      if (!decision.admitted) {
        log.info("admission.refused", { active: decision.active, limit: decision.limit });
        return "refused";
      }
      this.settings = decision.settings;
    } catch (error) {
      log.warn("admission.unavailable", { error });
      return "unavailable";
    }
    this.store({ tenantId, sessionId, held: true, releaseAttempts: 0 });
    return "admitted";
  }

  /**
   * Gives the slot back; true once nothing is held (now or before), false when it should be tried again later.
   * `withNextWrite`: what the release changed stays in memory until `save()`, so it rides on the caller's next commit
   * instead of costing one of its own. An eviction before that loses nothing: the object still thinks it holds the
   * slot and releases it again, which the admission object takes as a no-op.
   */
  release(log: Logger, { withNextWrite = false } = {}): Promise<boolean> {
    const slot = this.slot;
    if (!slot?.held || slot.releaseAttempts >= MAX_RELEASE_ATTEMPTS) return Promise.resolve(true);
    const keep = (next: StoredSlot) => (withNextWrite ? this.keep(next) : this.store(next));
    this.releasing ??= admissionObject(this.env, slot.tenantId)
      .release(slot.sessionId)
      .then(
        () => {
          keep({ ...slot, held: false });
          return true;
        },
        (error: unknown) => {
          const attempts = slot.releaseAttempts + 1;
          keep({ ...slot, releaseAttempts: attempts });
          if (attempts < MAX_RELEASE_ATTEMPTS) return false;
          log.error("admission.release_abandoned", { error, attempts });
          return true;
        },
      )
      .finally(() => {
        this.releasing = null;
      });
    return this.releasing;
  }

  /** Writes what a `withNextWrite` release kept in memory (nothing when it kept nothing). */
  save(): void {
    if (this.unsaved && this.slot) this.store(this.slot);
  }

  private keep(slot: StoredSlot): void {
    this.slot = slot;
    this.unsaved = true;
  }

  private store(slot: StoredSlot): void {
    this.slot = slot;
    this.unsaved = false;
    this.kv.put(KEY, slot);
  }
}

function admissionObject(env: Env, tenantId: string) {
  return env.TENANT_ADMISSION.get(env.TENANT_ADMISSION.idFromName(tenantId));
}
