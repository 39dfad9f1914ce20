/**
 * The rate limiter the tests' local platform runs (miniflare's, behind the `ratelimits` bindings) counts in windows of
 * its period aligned to the clock: a test that spends a budget in a window's last moments finds it whole again a
 * moment later. Such a test starts early in a window instead: this waits, when fewer than `needMs` of the current
 * window are left, for the next.
 */
export async function earlyInLimiterWindow(needMs = 20_000, periodMs = 60_000): Promise<void> {
  const left = periodMs - (Date.now() % periodMs);
  if (left < needMs) await new Promise((resolve) => setTimeout(resolve, left + 250));
}
