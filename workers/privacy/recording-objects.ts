import { recordingPrefix } from "../shared/recording-format.ts";

/**
 * A session's recording objects in R2: its parts (the recording itself) and an older recording's joined WAV, all under `recordingPrefix` (which ends
 * in a slash, so it names one session's objects and no other's). Used by the erasure and the retention run; deleting what is already gone is nothing.
 */
const LIST_PAGE = 1000;

export async function deleteRecordings(env: Env, tenantId: string, sessionId: string): Promise<void> {
  let cursor: string | undefined;
  do {
    const page = await env.RECORDINGS.list({ prefix: recordingPrefix(tenantId, sessionId), limit: LIST_PAGE, cursor });
    if (page.objects.length > 0) await env.RECORDINGS.delete(page.objects.map((object) => object.key));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
}
