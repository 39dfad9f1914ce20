import type { Carrier } from "../shared/db/schema.ts";

/**
 * A circuit breaker per carrier API, per isolate: after 5 consecutive failures the carrier is skipped for 30 s,
 * then one trial request is let through. Outbound calls use it to fail over without waiting on a dead API.
 */
const FAILURES_TO_OPEN = 5;
const OPEN_FOR_MS = 30_000;

const state = new Map<Carrier, { failures: number; openUntil: number }>();

export function carrierAvailable(carrier: Carrier, now = Date.now()): boolean {
  const entry = state.get(carrier);
  return !entry || entry.failures < FAILURES_TO_OPEN || now >= entry.openUntil;
}

export function recordCarrierResult(carrier: Carrier, ok: boolean, now = Date.now()): void {
  if (ok) {
    state.delete(carrier);
    return;
  }
  const entry = state.get(carrier) ?? { failures: 0, openUntil: 0 };
  entry.failures += 1;
  if (entry.failures >= FAILURES_TO_OPEN) entry.openUntil = now + OPEN_FOR_MS;
  state.set(carrier, entry);
}
