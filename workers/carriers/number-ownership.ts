import type { Carrier } from "../shared/db/schema.ts";
import { AppError, reasonOf, serviceUnavailable } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { carrierNamed } from "./registry.ts";

/**
 * A number may be attached only when the carrier says it is on this deployment's account: otherwise any tenant could
 * claim a number it does not hold (and the calls of whoever buys it later). The carrier's answer is cached in KV:
 * - "on the account" for an hour: a number leaves an account rarely (released, ported out), and a stale yes only
 *   lets a number be attached that no call will then reach (routing still needs the carrier to deliver it);
 * - "not on the account" for 60 s (KV's shortest life): a number just bought or ported in is attachable within a
 *   minute, while a tenant retrying a refused number does not cost a carrier request each time.
 * A carrier that cannot answer (unreachable, 5xx, refused credentials) is never cached and never read as "no": the
 * attach fails with 503 and can be retried.
 */
const ON_ACCOUNT_TTL_SECONDS = 3600;
const NOT_ON_ACCOUNT_TTL_SECONDS = 60;

const cacheKey = (carrier: Carrier, e164: string) => `number-on-account:${carrier}:${e164}`;

async function cachedAnswer(env: Env, key: string): Promise<boolean | null> {
  try {
    const hit = await env.CACHE.get(key);
    return hit === null ? null : hit === "yes";
  } catch {
    // KV unavailable: the carrier answers.
    return null;
  }
}

/** Throws 422 `number_not_owned` when the carrier does not hold `e164` for this account, 503 when it cannot say. */
export async function assertNumberOnAccount(env: Env, log: Logger, carrier: Carrier, e164: string): Promise<void> {
  const key = cacheKey(carrier, e164);
  let onAccount = await cachedAnswer(env, key);
  if (onAccount === null) {
    try {
      onAccount = await carrierNamed(carrier).holdsNumber(env, e164);
    } catch (error) {
      if (error instanceof AppError) throw error;
      log.warn("carrier.number_lookup_failed", { carrier, reason: reasonOf(error) });
      throw serviceUnavailable("carrier_unavailable", `Could not confirm the number with ${carrier}; try again shortly`);
    }
    try {
      await env.CACHE.put(key, onAccount ? "yes" : "no", {
        expirationTtl: onAccount ? ON_ACCOUNT_TTL_SECONDS : NOT_ON_ACCOUNT_TTL_SECONDS,
      });
    } catch {
      // A cache write failure only costs the next attach a carrier request.
    }
  }
  if (!onAccount) {
    throw new AppError(422, "number_not_owned", `This number is not on the platform's ${carrier} account`, "validation");
  }
}
