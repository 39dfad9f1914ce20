import type { ProviderHealth } from "./provider-health.ts";
import type { ProviderName } from "./settings.ts";

type Health = Pick<ProviderHealth, "provider" | "state"> & Partial<Pick<ProviderHealth, "probeDue">>;

/**
 * The provider a new session starts on, from the registry's snapshot:
 * 1. the tenant's / number's preference when it is configured and healthy, degraded or unknown (`local` always is);
 * 2. otherwise the first configured provider in `order` that is healthy, then the first degraded, then the first
 *    unknown (offline and unhealthy ones are skipped), then the first offline one whose recovery probe is due;
 * 3. `local`, the last resort (it needs no key or network), even when it appears earlier in `order`.
 * A provider missing from the snapshot counts as unknown. Pure.
 */
export function chooseProvider(
  snapshot: readonly Health[],
  preferred: ProviderName | null,
  order: readonly ProviderName[],
  configured: (provider: ProviderName) => boolean,
): ProviderName {
  const health = new Map(snapshot.map((entry) => [entry.provider, entry]));
  const stateOf = (provider: ProviderName) => health.get(provider)?.state ?? "unknown";
  const usable = (provider: ProviderName) => ["healthy", "degraded", "unknown"].includes(stateOf(provider));
  if (preferred === "local") return "local";
  if (preferred && configured(preferred) && usable(preferred)) return preferred;
  const candidates = order.filter((provider) => provider !== "local" && configured(provider));
  for (const state of ["healthy", "degraded", "unknown"] as const) {
    const found = candidates.find((provider) => stateOf(provider) === state);
    if (found) return found;
  }
  return candidates.find((provider) => stateOf(provider) === "offline" && health.get(provider)?.probeDue === true) ?? "local";
}
