import { chooseProvider } from "./provider-choice.ts";
import { providerConfigured } from "./provider-endpoints.ts";
import { type ProviderHealth, REGISTRY_NAME } from "./provider-health.ts";
import { type ProviderName, parseSettings } from "./settings.ts";

/** How long one isolate reuses the registry's snapshot for session choices (the registry is one object). */
const SNAPSHOT_TTL_MS = 5_000;
let cached: { at: number; snapshot: ProviderHealth[] } | null = null;

/** The registry's snapshot now; null when it cannot be reached. */
async function freshHealthSnapshot(env: Env): Promise<ProviderHealth[] | null> {
  try {
    const namespace = env.PROVIDER_HEALTH;
    return await namespace.get(namespace.idFromName(REGISTRY_NAME)).snapshot();
  } catch {
    return null;
  }
}

/**
 * The registry's snapshot, reused per isolate while younger than `maxAgeMs` (at most 5 s); empty (all unknown) when
 * the registry cannot be reached. The registry is one object every new session and every live call asks.
 */
export async function healthSnapshot(env: Env, maxAgeMs = SNAPSHOT_TTL_MS, now = Date.now()): Promise<ProviderHealth[]> {
  if (cached && now - cached.at < Math.min(maxAgeMs, SNAPSHOT_TTL_MS)) return cached.snapshot;
  const snapshot = await freshHealthSnapshot(env);
  if (!snapshot) return cached?.snapshot ?? [];
  cached = { at: now, snapshot };
  return snapshot;
}

/** The provider a new session should start on: chooseProvider over the fleet's health and this deployment's settings. */
export async function providerForNewSession(env: Env, preferred: ProviderName | null): Promise<ProviderName> {
  const settings = parseSettings(env).values;
  return chooseProvider(await healthSnapshot(env), preferred ?? settings.DEFAULT_PROVIDER ?? null, settings.PROVIDER_ORDER, (p) =>
    providerConfigured(env, p),
  );
}
