import { metrics } from "../shared/observability/metrics.ts";

/**
 * The business engine's read cache: isolate memory → KV → D1, with a lifetime per kind of read. A write never edits
 * cached entries; it moves the tenant's *generation* for the kinds it touched, so every key cached before it is simply
 * never asked for again (and ages out). The writer's isolate holds the new generation at once, so a writer always reads
 * its own write; another isolate learns it from KV within `GENERATION_MEMORY_MS` (plus KV's own propagation between
 * locations). Money is never decided on a cached read: writes compute balances inside their D1 batch.
 */
export const CACHE_LIFETIMES_SECONDS = {
  customer_list: 300,
  /** A customer's detail, balance included. */
  balance: 60,
  invoice_history: 1_800,
  product_catalogue: 3_600,
  reminder_queue: 120,
  /** A text model's reading of a message (never invalidated: it depends only on its key). */
  intent: 600,
} as const;
export type CacheKind = keyof typeof CACHE_LIFETIMES_SECONDS;

/** How long an isolate trusts the generation it last read from KV before asking again. */
const GENERATION_MEMORY_MS = 2_000;
/** Entries an isolate keeps; past it the oldest go first (a Map iterates in insertion order). */
const MEMORY_ENTRIES = 2_000;

interface MemoryEntry {
  value: unknown;
  expiresAt: number;
}

const memory = new Map<string, MemoryEntry>();
const generations = new Map<string, { generation: string; checkedAt: number }>();

const generationKey = (tenantId: string, kind: CacheKind) => `biz-gen:${tenantId}:${kind}`;

export class BusinessCache {
  constructor(
    private readonly kv: KVNamespace,
    private readonly tenantId: string,
  ) {}

  /** The value for `key` of this kind: from memory, else KV, else `load` (whose answer is then kept in both). */
  async read<T>(kind: CacheKind, key: string, load: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const fullKey = `biz:${this.tenantId}:${kind}:${await this.generation(kind, now)}:${key}`;
    const inMemory = memory.get(fullKey);
    if (inMemory && inMemory.expiresAt > now) {
      metrics.count("cache_requests_total", { tier: "memory", kind, result: "hit" });
      return inMemory.value as T;
    }
    metrics.count("cache_requests_total", { tier: "memory", kind, result: "miss" });
    const lifetimeMs = CACHE_LIFETIMES_SECONDS[kind] * 1000;
    try {
      const stored = await this.kv.get<{ value: T }>(fullKey, "json");
      metrics.count("cache_requests_total", { tier: "kv", kind, result: stored ? "hit" : "miss" });
      if (stored) {
        remember(fullKey, stored.value, now + lifetimeMs);
        return stored.value;
      }
    } catch {
      // KV unavailable: D1 answers, and nothing is lost but the saving.
      metrics.count("cache_requests_total", { tier: "kv", kind, result: "error" });
    }
    const value = await load();
    remember(fullKey, value, now + lifetimeMs);
    try {
      await this.kv.put(fullKey, JSON.stringify({ value }), { expirationTtl: Math.max(60, CACHE_LIFETIMES_SECONDS[kind]) });
    } catch {
      // A failed cache write costs the next reader a D1 query, nothing more.
    }
    return value;
  }

  /** After a write: every cached read of these kinds for the tenant is dropped (a new generation). */
  async invalidate(...kinds: CacheKind[]): Promise<void> {
    const now = Date.now();
    await Promise.all(
      kinds.map(async (kind) => {
        const generation = crypto.randomUUID();
        generations.set(generationKey(this.tenantId, kind), { generation, checkedAt: now });
        try {
          await this.kv.put(generationKey(this.tenantId, kind), generation);
        } catch {
          // Other isolates keep the old generation until their entries expire (at most the kind's lifetime): the
          // price of KV being down, stated in the README.
        }
      }),
    );
  }

  private async generation(kind: CacheKind, now: number): Promise<string> {
    const key = generationKey(this.tenantId, kind);
    const known = generations.get(key);
    if (known && now - known.checkedAt < GENERATION_MEMORY_MS) return known.generation;
    let generation = known?.generation ?? "0";
    try {
      generation = (await this.kv.get(key)) ?? "0";
    } catch {
      // KV unavailable: keep what this isolate knew.
    }
    generations.set(key, { generation, checkedAt: now });
    return generation;
  }
}

function remember(key: string, value: unknown, expiresAt: number): void {
  memory.delete(key);
  memory.set(key, { value, expiresAt });
  if (memory.size > MEMORY_ENTRIES) memory.delete(memory.keys().next().value as string);
}
