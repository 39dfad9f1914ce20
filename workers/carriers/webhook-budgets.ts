import type { Carrier } from "../shared/db/schema.ts";
import { sourceBlock } from "./ip-allowlist.ts";

/**
 * Layer 1 of the webhook guard: two budgets instead of one per source address, because Twilio and Telnyx send every
 * customer's webhooks from a few shared addresses (a per-address budget on all traffic capped a busy deployment at
 * a few hundred calls a minute).
 *
 * - Requests refused by a guard layer (allowlist, size, signature, freshness, media credential) count against a
 *   tight budget per carrier, source (an IPv4 address, an IPv6 /64) and account claim (`WEBHOOK_FAILURE_LIMITER`).
 *   The binding's `limit()` counts every call, so only failures call it; the refusal that spends the budget is
 *   answered 429 and remembered by the isolate, which then refuses that source and claim before reading a signature
 *   until the window has passed.
 * - Verified requests count against a ceiling per carrier account (`CARRIER_ACCOUNT_LIMITER`), sized in the README
 *   for thousands of calls a minute.
 */

/**
 * Which account an unverified request says it is for. A carrier's shared address also relays other customers'
 * webhooks (anyone with an account at the carrier can point a number at our URL; those fail our signature), and the
 * carrier itself fills the account in: such failures are counted apart from requests claiming our account, so they
 * cannot spend the budget our own traffic from that address is refused by.
 */
export type AccountClaim = "own" | "foreign" | "none";

export function accountClaim(claimed: unknown, ownAccount: string): AccountClaim {
  if (typeof claimed !== "string") return "none";
  return claimed === ownAccount ? "own" : "foreign";
}

/** One window of the failure limiter (its `period`): how long a spent source is refused without being counted. */
const BLOCK_MS = 60_000;
/** Bounds the memory a flood from many sources can take; the oldest verdict goes first (the limiter still counts). */
const MAX_REMEMBERED = 10_000;
const blockedUntil = new Map<string, number>();

export const failureBudgetKey = (carrier: Carrier, ip: string, claim: AccountClaim) => `${carrier}:${sourceBlock(ip)}:${claim}`;

export function isBlocked(key: string): boolean {
  const until = blockedUntil.get(key);
  if (until === undefined) return false;
  if (until > Date.now()) return true;
  blockedUntil.delete(key);
  return false;
}

/** Counts one refused request; true when it spent the budget (the source is then remembered as blocked). */
export async function spendFailure(env: Env, key: string): Promise<boolean> {
  const { success } = await env.WEBHOOK_FAILURE_LIMITER.limit({ key });
  if (success) return false;
  if (blockedUntil.size >= MAX_REMEMBERED) {
    const oldest = blockedUntil.keys().next();
    if (!oldest.done) blockedUntil.delete(oldest.value);
  }
  blockedUntil.set(key, Date.now() + BLOCK_MS);
  return true;
}

/** Counts one verified request against its account's ceiling; false when the ceiling is reached. */
export async function withinAccountCeiling(env: Env, carrier: Carrier, account: string): Promise<boolean> {
  const { success } = await env.CARRIER_ACCOUNT_LIMITER.limit({ key: `${carrier}:${account}` });
  return success;
}
