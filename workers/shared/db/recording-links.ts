import { eq } from "drizzle-orm";
import { database } from "./client.ts";
import { recordings } from "./schema.ts";

/**
 * Where a recording is in R2 (its parts' prefix, or an older recording's joined WAV), by the recording's id alone. Cross-tenant on purpose: a signed recording link
 * carries no tenant, and only a link whose signature over this id checked out may ask (workers/routes/recordings.ts).
 */
export async function recordingObjectKey(env: Env, id: string): Promise<string | null> {
  const [row] = await database(env.DB).select({ r2Key: recordings.r2Key }).from(recordings).where(eq(recordings.id, id)).limit(1);
  return row?.r2Key ?? null;
}
