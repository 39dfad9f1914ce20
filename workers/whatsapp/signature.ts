import { constantTimeEqual } from "../shared/constant-time.ts";
import { hmac } from "../shared/hmac.ts";

/**
 * Meta signs each delivery with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`. The MAC is
 * computed over the bytes as received (re-serialised JSON would differ) and compared in constant time.
 */
const HEADER = /^sha256=([0-9a-f]{64})$/i;

export async function verifyWhatsAppSignature(secret: string, body: Uint8Array, header: string | undefined): Promise<boolean> {
  const hex = header ? HEADER.exec(header.trim())?.[1] : undefined;
  if (!hex) return false;
  const presented = new Uint8Array(32);
  for (let i = 0; i < 32; i++) presented[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  const expected = await hmac(secret, body);
  return constantTimeEqual(expected, presented);
}
