/**
 * The key a model's reading of a message is cached under (kind `intent` of the business cache,
 * workers/business/cache.ts: 10 minutes, isolate memory then KV). It holds everything the reading depends on: the text
 * as normalised (case, spacing, end punctuation), the shop's local date (so "tomorrow" never outlives its day) and the
 * conversation's context (the customer it was last about), hashed so no message text sits in a key. The cache itself
 * scopes it to the tenant.
 */
export interface IntentCacheKey {
  text: string;
  localDate: string;
  lastCustomer: string | null;
}

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
  return [...digest].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
