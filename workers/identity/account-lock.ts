import { reasonOf } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";

/**
 * Failed sign-ins count against their account in LOGIN_LIMITER; past its budget the account is locked for a minute
 * (KV's shortest TTL), so even the right password waits. KV is a cache the platform never needs: when it cannot
 * say whether an account is locked, the account's budget itself decides — a right password then spends one token
 * of it, during the outage only — so losing KV neither blocks sign-in nor lifts a lock.
 */
export const ACCOUNT_LOCK_SECONDS = 60;

export type LockState = "locked" | "open" | "unknown";

const lockKey = (emailHash: string) => `login-lock:${emailHash}`;
const budgetKey = (normalizedEmail: string) => `account:${normalizedEmail}`;

export async function accountLockState(env: Env, log: Logger, emailHash: string): Promise<LockState> {
  try {
    return (await env.CACHE.get(lockKey(emailHash))) ? "locked" : "open";
  } catch (error) {
    log.warn("auth.lock_unreadable", { reason: reasonOf(error) });
    return "unknown";
  }
}

/** Counts one failure against the account; true when that passed its budget (the account is locked from now). */
export async function spendFailure(env: Env, log: Logger, normalizedEmail: string, emailHash: string): Promise<boolean> {
  const { success } = await env.LOGIN_LIMITER.limit({ key: budgetKey(normalizedEmail) });
  if (success) return false;
  try {
    await env.CACHE.put(lockKey(emailHash), "1", { expirationTtl: ACCOUNT_LOCK_SECONDS });
  } catch (error) {
    // The budget stays spent for its window: a sign-in that cannot read the lock asks the budget instead.
    log.warn("auth.lock_unwritable", { reason: reasonOf(error) });
  }
  return true;
}

/** For a right password whose lock could not be read: whether the account's budget still lets it in. */
export async function budgetAllowsSignIn(env: Env, normalizedEmail: string): Promise<boolean> {
  return (await env.LOGIN_LIMITER.limit({ key: budgetKey(normalizedEmail) })).success;
}
