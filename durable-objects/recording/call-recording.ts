import type { RecordingMode } from "../../workers/shared/db/schema.ts";
import { recordings } from "../../workers/shared/db/schema.ts";
import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import {
  durationMsOf,
  recordingPartKey,
  recordingPrefix,
  recordingWavKey,
  WAV_HEADER_BYTES,
  wavHeader,
} from "../../workers/shared/recordings.ts";
import type { TenantSettings } from "../../workers/shared/tenant-settings.ts";
import type { AudioFormat } from "../media/audio/audio-format.ts";
import type { AudioTap } from "../media/audio-tap.ts";
import { Recorder } from "./recorder.ts";

/**
 * How often the settled part of the recording goes to R2 as a part object. What a machine dying mid-call can lose;
 * short enough that memory holds three periods (recorder.ts), long enough that a call makes few requests.
 */
export const RECORDING_FLUSH_MS = 4_000;

interface RecordingParts {
  env: Env;
  session(): { tenantId: string; sessionId: string } | null;
  /** The tenant's settings as the call read them once (bounded; null when they could not be read). */
  tenantSettings(): Promise<TenantSettings | null>;
  /** The called number's own setting (null: the tenant's), carried from the number's route into the call's record. */
  numberSetting(): RecordingMode | null;
  waitUntil(task: Promise<unknown>): void;
  log(): Logger;
}

/**
 * The session's recording (README "Recordings"): whether the tenant records is learned once when the conversation
 * starts (read with the caller's context, never on the audio path); while it runs, the recorder (recorder.ts) fills
 * memory from the per-frame path and a timer uploads what has settled every few seconds as a part object under the
 * session's prefix in R2 — R2 requests are network I/O, not storage writes, so they hold no output gate and the
 * call's audio never waits on them. When the session ends, the parts become one WAV with its header and a D1 row.
 * An object evicted mid-call loses only what it had not uploaded: the parts already in R2 are joined at the end by
 * whichever instance of the object sees the session end.
 */
export class CallRecording implements AudioTap {
  private recorder: Recorder | null = null;
  private learning: Promise<void> | null = null;
  private nextPart = 0;
  private uploads: Promise<void> = Promise.resolve();
  /**
   * The next upload, armed by the first audio after the last one: a timer only while audio flows, so a session whose
   * audio stopped (its stream dropped, a web caller gone) holds none and can be evicted or hibernate.
   */
  private timer: ReturnType<typeof setTimeout> | null = null;
  private session: { tenantId: string; sessionId: string } | null = null;
  /** The armed upload is the immediate one a burst asked for. */
  private timerSoon = false;
  /** What a recorded phone call's caller hears before the agent (the tenant's `consentMessage`); null when not recorded. */
  consentMessage: string | null = null;

  constructor(private readonly parts: RecordingParts) {}

  /**
   * Learns once whether the session is recorded (later calls share the first): the called number's own setting, else
   * the tenant's. Never rejects. Unknown tenant settings: not recorded (nor is a consent known to say).
   */
  learn(): Promise<void> {
    if (this.learning) return this.learning;
    const session = this.parts.session();
    if (!session) return Promise.resolve();
    this.learning = this.parts.tenantSettings().then((settings) => {
      if (!settings) return this.parts.log().warn("recording.setting_unreadable", {});
      if ((this.parts.numberSetting() ?? settings.recording) !== "on") return;
      this.consentMessage = settings.consentMessage;
      // R2 unreachable at the start: this session goes unrecorded rather than failing its call.
      return this.begin(session).catch(() => this.parts.log().warn("recording.start_failed", {}));
    });
    return this.learning;
  }

  // ── the per-frame path: a null check, then the recorder's copy into memory ───────────────────────────────

  caller(base64: string, format: AudioFormat): void {
    const recorder = this.recorder;
    if (!recorder) return;
    recorder.caller(base64, format);
    this.uploadDue(recorder);
  }

  agent(base64: string, format: AudioFormat, itemId: string, mark: string | null): void {
    const recorder = this.recorder;
    if (!recorder) return;
    recorder.agent(base64, format, itemId, mark);
    this.uploadDue(recorder);
  }

  heard(mark: string): void {
    this.recorder?.heard(mark);
  }

  cut(cut: { itemId: string; heardMs: number } | null): void {
    this.recorder?.cut(cut);
  }

  // ── off the audio path ───────────────────────────────────────────────────────────────────────────────────

  /**
   * The session ended: the last of the audio goes up and the parts in R2 (this instance's, and any an evicted one
   * left) become the WAV. Idempotent: a session whose parts are already joined has none left to join.
   */
  async finish(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    // Whether this session records, from the call's kept settings (no D1 trip): a restarted object that never heard
    // the call's audio still joins its predecessor's parts, and a session that does not record touches R2 not at all.
    await this.learn();
    const session = this.session;
    const recorder = this.recorder;
    this.recorder = null;
    if (!session) return;
    if (recorder) this.upload(session, recorder.drain(true));
    await this.uploads;
    try {
      await this.join(session);
    } catch (error) {
      // The parts stay in R2 under the session's prefix: nothing is lost, the next end (or retention) finds them.
      this.parts.log().error("recording.join_failed", { error: error instanceof Error ? error.message : String(error) });
    }
  }

  private async begin(session: { tenantId: string; sessionId: string }): Promise<void> {
    // After an eviction the session's earlier parts are in R2: this instance's follow them.
    const existing = await this.partKeys(recordingPrefix(session.tenantId, session.sessionId));
    this.nextPart = existing.length === 0 ? 0 : Number(existing.at(-1)!.slice(-8)) + 1;
    this.session = session;
    this.recorder = new Recorder();
  }

  /**
   * Arms the next upload: in the flush period, or at once (still off the frame path: from a timer) when a burst of
   * audio has filled half the memory.
   */
  private uploadDue(recorder: Recorder): void {
    const soon = recorder.drainDue;
    if (this.timer !== null && !(soon && !this.timerSoon)) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerSoon = soon;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        const { recorder, session } = this;
        if (recorder && session) this.upload(session, recorder.drain(false));
      },
      soon ? 0 : RECORDING_FLUSH_MS,
    );
  }

  /** Queues a part's upload behind the previous ones, so parts land in order whatever R2's latency. */
  private upload(session: { tenantId: string; sessionId: string }, bytes: Uint8Array | null): void {
    if (!bytes) return;
    const key = recordingPartKey(recordingPrefix(session.tenantId, session.sessionId), this.nextPart++);
    this.uploads = this.uploads.then(async () => {
      try {
        await this.parts.env.RECORDINGS.put(key, bytes);
      } catch (error) {
        this.parts.log().warn("recording.part_failed", { error: error instanceof Error ? error.message : String(error) });
      }
    });
    this.parts.waitUntil(this.uploads);
  }

  /** The parts, in order, streamed into one WAV (never whole in memory: an hour is 115 MB); then the row, then the parts go. */
  private async join(session: { tenantId: string; sessionId: string }): Promise<void> {
    const bucket = this.parts.env.RECORDINGS;
    const prefix = recordingPrefix(session.tenantId, session.sessionId);
    const keys = await this.partKeys(prefix);
    if (keys.length === 0) return;
    const sizes = await Promise.all(keys.map(async (key) => (await bucket.head(key))?.size ?? 0));
    const dataBytes = sizes.reduce((sum, size) => sum + size, 0);
    const wav = new FixedLengthStream(WAV_HEADER_BYTES + dataBytes);
    const writing = (async () => {
      const writer = wav.writable.getWriter();
      await writer.write(wavHeader(dataBytes));
      for (const [index, key] of keys.entries()) {
        const part = await bucket.get(key);
        const bytes = part ? new Uint8Array(await part.arrayBuffer()) : new Uint8Array(0);
        // A part that vanished or changed size since it was measured is padded or cut, so the header stays true.
        const padded = new Uint8Array(sizes[index]!);
        padded.set(bytes.subarray(0, padded.length));
        await writer.write(padded);
      }
      await writer.close();
    })();
    const wavKey = recordingWavKey(prefix);
    await Promise.all([bucket.put(wavKey, wav.readable, { httpMetadata: { contentType: "audio/wav" } }), writing]);
    const now = Date.now();
    const row = { durationMs: durationMsOf(dataBytes), bytes: WAV_HEADER_BYTES + dataBytes, r2Key: wavKey };
    await tenantScopeFor(this.parts.env, session.tenantId)
      .insert(recordings, { id: crypto.randomUUID(), sessionId: session.sessionId, createdAt: now, ...row })
      .onConflictDoUpdate({ target: [recordings.tenantId, recordings.sessionId], set: row });
    // R2 deletes at most 1,000 keys a request (an hour's parts are 900).
    for (let start = 0; start < keys.length; start += 1000) await bucket.delete(keys.slice(start, start + 1000));
  }

  private async partKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.parts.env.RECORDINGS.list({ prefix: `${prefix}parts/`, ...(cursor && { cursor }) });
      keys.push(...page.objects.map((object) => object.key));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return keys.sort();
  }
}
