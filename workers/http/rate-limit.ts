import { tooManyRequests } from "../shared/errors.ts";

/** Throws 429 with Retry-After (the limiter's window) when `key` is over its limit. */
export async function enforceRateLimit(limiter: RateLimit, key: string, windowSeconds = 60): Promise<void> {
  const { success } = await limiter.limit({ key });
  if (!success) throw tooManyRequests(windowSeconds);
}
