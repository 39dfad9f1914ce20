import { isJoinedWavKey, partEncoding, recordingPartsPrefix, silenceByte, wavHeader, wavHeaderBytes } from "../shared/recording-format.ts";

/**
 * A recording's WAV as served (README "Recordings"): the header, then the session's parts in order, streamed from R2
 * as they are — nothing joined, decoded or held whole in memory (an hour of µ-law is 58 MB). The length is known
 * before the first byte from the parts' listed sizes. `r2Key` is the row's: the recording's prefix, or the joined
 * WAV of a recording made before parts were served as they are.
 */
export async function recordingFile(
  bucket: R2Bucket,
  r2Key: string,
): Promise<{ body: ReadableStream; size: number; streamed: Promise<void> } | null> {
  if (isJoinedWavKey(r2Key)) {
    const object = await bucket.get(r2Key);
    return object && { body: object.body, size: object.size, streamed: Promise.resolve() };
  }
  const parts: R2Object[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: recordingPartsPrefix(r2Key), ...(cursor && { cursor }) });
    parts.push(...page.objects);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  if (parts.length === 0) return null;
  parts.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  // One encoding per recording: the call's object made its parts one when the session ended, before the row existed.
  const encoding = partEncoding(parts[0]!.key);
  const dataBytes = parts.reduce((sum, part) => sum + part.size, 0);
  const size = wavHeaderBytes(encoding) + dataBytes;
  const wav = new FixedLengthStream(size);
  const streamed = (async () => {
    const writer = wav.writable.getWriter();
    try {
      await writer.write(wavHeader(dataBytes, encoding));
      for (const part of parts) {
        const object = await bucket.get(part.key);
        // A part deleted since it was listed (an erasure running now) is silence, so the header stays true.
        const bytes = object ? new Uint8Array(await object.arrayBuffer()) : new Uint8Array(part.size).fill(silenceByte(encoding));
        await writer.write(bytes.subarray(0, part.size));
      }
      await writer.close();
    } catch (error) {
      await writer.abort(error).catch(() => undefined);
    }
  })();
  return { body: wav.readable, size, streamed };
}
