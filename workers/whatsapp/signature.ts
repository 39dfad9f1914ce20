import { constantTimeEqual } from "../shared/constant-time.ts";

/**
 * Meta signs each delivery with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`. The MAC is
 * computed over the bytes as received (re-serialised JSON would differ) and compared in constant time.
 */
const HEADER = /^sha256=([0-9a-f]{64})$/i;

const keys = new Map<string, Promise<CryptoKey>>();
function keyFor(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, key);
  }
  return key;
}

export async function verifyWhatsAppSignature(secret: string, body: Uint8Array, header: string | undefined): Promise<boolean> {
  const hex = header ? HEADER.exec(header.trim())?.[1] : undefined;
  if (!hex) return false;
  const presented = new Uint8Array(32);
  for (let i = 0; i < 32; i++) presented[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  const expected = new Uint8Array(await crypto.subtle.sign("HMAC", await keyFor(secret), body));
  return constantTimeEqual(expected, presented);
}

/** The body's bytes, or null past `limit`: reading stops as soon as the bound is passed, before anything is verified. */
export async function readBoundedBytes(request: Request, limit: number): Promise<Uint8Array | null> {
  if (Number(request.headers.get("content-length") ?? "0") > limit) return null;
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel("body too large");
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
