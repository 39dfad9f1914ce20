/**
 * Password hashing: PBKDF2-HMAC-SHA256 through WebCrypto, 100,000 iterations (the most the Workers runtime allows),
 * a 16-byte random salt per user, 32-byte derived key. Stored as `pbkdf2-sha256$<iterations>$<salt>$<hash>` (base64)
 * so the iteration count can be raised later without breaking old hashes. Self-contained: the operator CLI imports
 * this file under Node too.
 */
export const PBKDF2_ITERATIONS = 100_000;
const SALT_BYTES = 16;
const KEY_BITS = 256;
const SCHEME = "pbkdf2-sha256";

export async function hashPassword(password: string, iterations = PBKDF2_ITERATIONS): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const derived = await derive(password, salt, iterations);
  return [SCHEME, iterations, base64(salt), base64(derived)].join("$");
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, iterationsText, saltText, hashText] = stored.split("$");
  const iterations = Number(iterationsText);
  if (scheme !== SCHEME || !Number.isInteger(iterations) || iterations < 1 || !saltText || !hashText) return false;
  const expected = unbase64(hashText);
  const derived = await derive(password, unbase64(saltText), iterations);
  let diff = expected.length ^ derived.length;
  for (let i = 0; i < derived.length; i++) diff |= derived[i]! ^ (expected[i] ?? 0);
  return diff === 0;
}

/** A well-formed hash of a random password: login checks it for unknown emails so timing reveals nothing. */
export const DECOY_HASH = "pbkdf2-sha256$100000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

async function derive(password: string, salt: Uint8Array<ArrayBuffer>, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, KEY_BITS);
  return new Uint8Array(bits);
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function unbase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}
