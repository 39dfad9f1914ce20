/**
 * HMAC keys imported once per secret and kept (secrets come from configuration — one, two during a rotation — so
 * the cache stays a handful; it is cleared if it ever grows past that).
 */
const KEY_CACHE_LIMIT = 8;
const keys = new Map<string, Promise<CryptoKey>>();

function keyFor(secret: string, hash: "SHA-1" | "SHA-256"): Promise<CryptoKey> {
  if (secret === "") throw new Error("An HMAC secret is empty");
  const id = `${hash}:${secret}`;
  let key = keys.get(id);
  if (!key) {
    if (keys.size >= KEY_CACHE_LIMIT) keys.clear();
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash }, false, ["sign"]);
    keys.set(id, key);
  }
  return key;
}

/** HMAC of `data` under `secret` (SHA-256 unless a carrier's protocol says SHA-1). */
export async function hmac(secret: string, data: string | BufferSource, hash: "SHA-1" | "SHA-256" = "SHA-256"): Promise<Uint8Array> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return new Uint8Array(await crypto.subtle.sign("HMAC", await keyFor(secret, hash), bytes));
}
