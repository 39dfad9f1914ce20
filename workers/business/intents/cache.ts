import { metrics } from "../../shared/observability/metrics.ts";
import { type Intent, intentSchema } from "./intent.ts";

/**
 * Model readings, kept 10 minutes in the isolate and in KV. The key holds everything the reading depends on: the
 * tenant, the text as normalised (case, spacing, end punctuation), the shop's local date (so "tomorrow" never
 * outlives its day) and the conversation's context (the customer it was last about), hashed so no message text sits
 * in a key. Losing KV loses nothing but a model call.
 */
export const INTENT_CACHE_SECONDS = 600;
const MEMORY_ENTRIES = 500;

export interface IntentCacheKey {
  tenantId: string;
  text: string;
  localDate: string;
  lastCustomer: string | null;
}

const memory = new Map<string, { intent: Intent; expires: number }>();

export function normaliseText(text: string): string {
  return text
    .toLowerCase()
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/[?.!]+$/, "");
}

export async function intentCacheKey(key: IntentCacheKey): Promise<string> {
  const material = JSON.stringify([normaliseText(key.text), key.localDate, key.lastCustomer?.toLowerCase() ?? null]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(material)));
  const hex = [...digest].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `intent:${key.tenantId}:${hex}`;
}

export async function cachedIntent(kv: KVNamespace, key: string, now: number): Promise<Intent | null> {
  const local = memory.get(key);
  if (local && local.expires > now) {
    metrics.count("cache_requests_total", { tier: "memory", kind: "intent", result: "hit" });
    return local.intent;
  }
  metrics.count("cache_requests_total", { tier: "memory", kind: "intent", result: "miss" });
  try {
    const stored = intentSchema.safeParse(await kv.get(key, "json"));
    metrics.count("cache_requests_total", { tier: "kv", kind: "intent", result: stored.success ? "hit" : "miss" });
    if (!stored.success) return null;
    remember(key, stored.data, now);
    return stored.data;
  } catch {
    metrics.count("cache_requests_total", { tier: "kv", kind: "intent", result: "error" });
    return null;
  }
}

export async function storeIntent(kv: KVNamespace, key: string, intent: Intent, now: number): Promise<void> {
  remember(key, intent, now);
  try {
    await kv.put(key, JSON.stringify(intent), { expirationTtl: INTENT_CACHE_SECONDS });
  } catch {
    // The isolate still remembers it; another isolate pays one model call.
  }
}

function remember(key: string, intent: Intent, now: number): void {
  if (memory.size >= MEMORY_ENTRIES) memory.delete(memory.keys().next().value as string);
  memory.set(key, { intent, expires: now + INTENT_CACHE_SECONDS * 1000 });
}
