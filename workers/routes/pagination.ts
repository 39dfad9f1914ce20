import { z } from "@hono/zod-openapi";

/** Keyset pagination: `limit` (1–100, default 50) and an opaque `cursor` from the previous page's `nextCursor`. */
export const pageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().max(200).optional(),
});

export function pageOf<T extends { schema: z.ZodType }>(item: T["schema"], name: string) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() }).openapi(name);
}

/** Cursor = base64url of the last item's sort key; opaque to clients. */
export function encodeCursor(parts: Array<string | number>): string {
  return btoa(JSON.stringify(parts)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeCursor(cursor: string | undefined): Array<string | number> | null {
  if (!cursor) return null;
  try {
    const parsed: unknown = JSON.parse(atob(cursor.replace(/-/g, "+").replace(/_/g, "/")));
    return Array.isArray(parsed) && parsed.every((p) => typeof p === "string" || typeof p === "number") ? parsed : null;
  } catch {
    return null;
  }
}
