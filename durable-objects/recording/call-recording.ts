import type { RecordingMode } from "../../workers/shared/db/schema.ts";
import { recordings } from "../../workers/shared/db/schema.ts";
import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import {
  durationMsOf,
  partEncoding,
  type RecordingEncoding,
  recordingPartKey,
  recordingPartsPrefix,
  recordingPrefix,
  wavHeaderBytes,
} from "../../workers/shared/recording-format.ts";
import type { TenantSettings } from "../../workers/shared/tenant-settings.ts";
import type { AudioFormat } from "../media/audio/audio-format.ts";
import { decodeAlaw, decodeMulaw } from "../media/audio/g711.ts";
import { encodePcm16le } from "../media/audio/pcm16.ts";
import type { AudioTap } from "../media/audio-tap.ts";
import { Recorder } from "./recorder.ts";

/**
 * How often the settled part of the recording goes to R2 as a part object. What a machine dying mid-call can lose;
 * long enough that a call makes few requests (locally each R2 put costs workerd about 10 ms of CPU on the thread every
 * call shares: test/bench/recording.bench.ts), short enough that memory holds two periods and more (recorder.ts).
 */
export const RECORDING_FLUSH_MS = 15_000;

interface RecordingParts {
  env: Env;
  session(): { tenantId: string; sessionId: string } | null;
  /** The tenant's settings as the call read them once (bounded; null when they could not be read). */
  tenantSettings(): Promise<TenantSettings | null>;
  /** The called number's own setting (null: the tenant's), carried from the number's route into the call's record. */
  numberSetting(): RecordingMode | null;
  /**
   * Whether an earlier instance of the object may have recorded this session: false when this instance found no
   * session in storage and began it, so the parts it uploaded itself are all there are and none need listing.
   */
  predecessorPossible(): boolean;
  waitUntil(task: Promise<unknown>): void;
  log(): Logger;
}

/**
 * The session's recording (README "Recordings"): whether the tenant records is learned once when the conversation
 * starts (read with the caller's context, never on the audio path); while it runs, the recorder (recorder.ts) fills
 * memory from the per-frame path and a timer uploads what has settled every few seconds as a part object under the
 * session's prefix in R2 — R2 requests are network I/O, not storage writes, so they hold no output gate and the
 * call's audio never waits on them. The parts are the recording: when the session ends the last one goes up and a D1
 * row names the prefix; `GET /recordings/{id}` serves a WAV header and the parts in order. An object evicted mid-call
 * loses only what it had not uploaded: its successor's parts sort after its own.
 */
export class CallRecording implements AudioTap {
  private recorder: Recorder | null = null;
  private learning: Promise<void> | null = null;
  /** When this instance began recording: its parts' names start with it, so they sort after a predecessor's. */
  private startedAt = 0;
  private nextPart = 0;
  /** The parts this instance put, in order (names and sizes): the recording, when no predecessor left parts. */
  private readonly uploaded: Array<{ key: string; size: number }> = [];
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
      // Nothing to ask R2 first: this instance's parts are named to follow any a predecessor left.
      this.startedAt = Date.now();
      this.session = session;
      this.recorder = new Recorder();
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
   * The session ended: the last of the audio goes up and the D1 row names the recording's parts (this instance's,
   * and any an evicted one left). Idempotent: the row is upserted.
   */
  async finish(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    // Whether this session records, from the call's kept settings (no D1 trip): a restarted object that never heard
    // the call's audio still writes the row for its predecessor's parts, and a session that does not record touches
    // R2 not at all.
    await this.learn();
    const session = this.session;
    const recorder = this.recorder;
    this.recorder = null;
    if (!session) return;
    if (recorder) this.upload(session, recorder.drain(true));
    await this.uploads;
    try {
      await this.describe(session);
    } catch (error) {
      // The parts stay in R2 under the session's prefix: nothing is lost, the next end (or retention) finds them.
      this.parts.log().error("recording.describe_failed", { error: error instanceof Error ? error.message : String(error) });
    }
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
  private upload(session: { tenantId: string; sessionId: string }, part: { bytes: Uint8Array; encoding: RecordingEncoding } | null): void {
    if (!part) return;
    const prefix = recordingPrefix(session.tenantId, session.sessionId);
    const key = recordingPartKey(prefix, this.startedAt, this.nextPart++, part.encoding);
    this.uploads = this.uploads.then(async () => {
      try {
        await this.parts.env.RECORDINGS.put(key, part.bytes);
        this.uploaded.push({ key, size: part.bytes.length });
      } catch (error) {
        this.parts.log().warn("recording.part_failed", { error: error instanceof Error ? error.message : String(error) });
      }
    });
    this.parts.waitUntil(this.uploads);
  }

  /**
   * The D1 row that makes the parts a recording: their prefix, length and duration — from the parts this instance
   * put, or, when an earlier instance may have left some, from one listing (names and sizes only; no part is read).
   * A listing at every call's end was the largest cost of a recorded call's end under load (README "Recordings").
   * Parts in more than one encoding — a call whose object was replaced across the deploy that began recording G.711,
   * its predecessor's parts PCM16 — are made one first: the G.711 parts become PCM16.
   */
  private async describe(session: { tenantId: string; sessionId: string }): Promise<void> {
    const prefix = recordingPrefix(session.tenantId, session.sessionId);
    let parts = this.parts.predecessorPossible() ? await this.listParts(prefix) : this.uploaded;
    if (parts.length === 0) return;
    if (new Set(parts.map((part) => partEncoding(part.key))).size > 1) parts = await this.toPcm16(parts);
    const encoding = partEncoding(parts[0]!.key);
    const dataBytes = parts.reduce((sum, part) => sum + part.size, 0);
    const row = { durationMs: durationMsOf(dataBytes, encoding), bytes: wavHeaderBytes(encoding) + dataBytes, r2Key: prefix };
    await tenantScopeFor(this.parts.env, session.tenantId)
      .insert(recordings, { id: crypto.randomUUID(), sessionId: session.sessionId, createdAt: Date.now(), ...row })
      .onConflictDoUpdate({ target: [recordings.tenantId, recordings.sessionId], set: row });
  }

  /** Rewrites every G.711 part as PCM16 under the same name (its suffix changed, so the order holds). */
  private async toPcm16(parts: Array<{ key: string; size: number }>): Promise<Array<{ key: string; size: number }>> {
    const bucket = this.parts.env.RECORDINGS;
    const converted: Array<{ key: string; size: number }> = [];
    for (const part of parts) {
      const encoding = partEncoding(part.key);
      const object = encoding === "pcm16" ? null : await bucket.get(part.key);
      if (!object) {
        converted.push(part);
        continue;
      }
      const g711 = new Uint8Array(await object.arrayBuffer());
      const samples = new Int16Array(g711.length);
      if (encoding === "pcmu") decodeMulaw(g711, samples);
      else decodeAlaw(g711, samples);
      const pcm = new Uint8Array(samples.length * 2);
      encodePcm16le(samples, pcm);
      const key = `${part.key.slice(0, part.key.lastIndexOf("."))}.pcm16`;
      await bucket.put(key, pcm);
      await bucket.delete(part.key);
      converted.push({ key, size: pcm.length });
    }
    return converted;
  }

  private async listParts(prefix: string): Promise<Array<{ key: string; size: number }>> {
    const parts: Array<{ key: string; size: number }> = [];
    let cursor: string | undefined;
    do {
      const page = await this.parts.env.RECORDINGS.list({ prefix: recordingPartsPrefix(prefix), ...(cursor && { cursor }) });
      parts.push(...page.objects.map((object) => ({ key: object.key, size: object.size })));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return parts.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}
