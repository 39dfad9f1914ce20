import type { ConversationItemInputAudioTranscriptionCompletedEvent, SessionUpdateEvent } from "openai/resources/realtime/realtime";
import { z } from "zod";
import { BROWSER_AUDIO_RATE } from "../../workers/shared/live-protocol.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import { createTranscoder, type Transcode } from "../media/audio/transcoder.ts";
import { openProviderSocket } from "../voice/providers/provider-socket.ts";

/** Where the supervisor's speech is transcribed: OpenAI's Realtime endpoint (the transcription intent) and key. */
export interface SpeechToTextEndpoint {
  url: string;
  apiKey: string;
  /** The call's correlation id; the stream sends it with a suffix, so a provider-side trace names this leg. */
  correlationId: string;
}

export interface SupervisorSttHost {
  /** A final transcript of one utterance (raw: the caller of this masks it as the tenant asks). */
  heard(text: string): void;
  log(): Logger;
}

/** OpenAI Realtime takes PCM16 at 24 kHz only; the supervisor's browser sends 16 kHz. */
const FROM = { encoding: "pcm16", sampleRate: BROWSER_AUDIO_RATE } as const;
const TO = { encoding: "pcm16", sampleRate: 24_000 } as const;
const BYTES_PER_MS = (BROWSER_AUDIO_RATE * 2) / 1000;
/** Frames sent before the socket is open are held up to this many (3 s), so the first words are not lost. */
const MAX_PENDING_FRAMES = 150;
/** After the release, how long the stream may still deliver the last words before it is closed. */
const FINISH_GRACE_MS = 5_000;
const TRANSCRIPTION_MODEL = "gpt-4o-transcribe";
/** Answered to our closing commit when the service's VAD had already committed everything: not a failure. */
const EMPTY_COMMIT = "input_audio_buffer_commit_empty";
/** The one audio message, with the payload spliced in: no object built and serialised per frame. */
const APPEND_PREFIX = '{"type":"input_audio_buffer.append","audio":"';

const SETUP: SessionUpdateEvent = {
  type: "session.update",
  session: {
    type: "transcription",
    audio: {
      input: {
        format: { type: "audio/pcm", rate: 24000 },
        transcription: { model: TRANSCRIPTION_MODEL },
        turn_detection: { type: "server_vad" },
      },
    },
  },
};

const completedType: ConversationItemInputAudioTranscriptionCompletedEvent["type"] =
  "conversation.item.input_audio_transcription.completed";
const serverEvent = z.union([
  z.object({ type: z.literal(completedType), transcript: z.string() }),
  z.object({ type: z.literal("error"), error: z.object({ code: z.string().nullish() }) }),
]);

/**
 * The supervisor's words during a takeover, as text: a speech-to-text stream of its own (not the conversation's
 * provider, which hears only the caller), opened when the takeover starts and closed after the release. The
 * supervisor's frames are teed to it on the audio path: resampled to 24 kHz and sent, one `ws.send` per frame, no
 * await, storage or log. Each utterance the service's turn detection ends comes back as one transcript.
 *
 * It never affects the call: a refused, broken or erroring stream is one warn log (a code, never text) and the
 * takeover goes on; the audio it did not transcribe (all of it when no STT is configured) is counted, and at the end
 * the transcript says how much of the supervisor's audio was not transcribed — never a made-up line.
 */
export class SupervisorStt {
  private socket: WebSocket | null = null;
  private pending: string[] | null = [];
  private pendingBytes = 0;
  private failed = false;
  private finished = false;
  private untranscribedBytes = 0;
  private readonly transcode: Transcode | null;

  constructor(
    endpoint: SpeechToTextEndpoint | null,
    private readonly host: SupervisorSttHost,
  ) {
    if (!endpoint) {
      this.transcode = null;
      this.failed = true;
      return;
    }
    this.transcode = createTranscoder(FROM, TO);
    void this.open(endpoint);
  }

  // ── per frame ────────────────────────────────────────────────────────────────────────────────────────────

  /** One supervisor frame (PCM16 16 kHz, base64; `bytes` its length): to the stream, or counted as untranscribed. */
  audio(base64: string, bytes: number): void {
    if (this.failed || this.finished || !this.transcode) {
      this.untranscribedBytes += bytes;
      return;
    }
    const resampled = this.transcode(base64);
    if (!resampled) return;
    const message = `${APPEND_PREFIX}${resampled}"}`;
    if (this.socket) return this.send(message, bytes);
    if (this.pending && this.pending.length < MAX_PENDING_FRAMES) {
      this.pending.push(message);
      this.pendingBytes += bytes;
    } else this.untranscribedBytes += bytes;
  }

  // ── lifecycle ────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * The takeover ended: the last words are committed (the service's VAD may not have heard their end yet) and the
   * stream gets a short grace to deliver them. Returns the seconds of audio that were not transcribed (whole seconds,
   * 0 when all of it was); once only, later calls return 0.
   */
  finish(): number {
    if (this.finished) return 0;
    this.finished = true;
    if (this.socket && !this.failed) this.closeAfterGrace(this.socket);
    return Math.round(this.untranscribedBytes / BYTES_PER_MS / 1000);
  }

  private closeAfterGrace(socket: WebSocket): void {
    this.send('{"type":"input_audio_buffer.commit"}', 0);
    setTimeout(() => this.closeSocket(socket), FINISH_GRACE_MS);
  }

  private async open(endpoint: SpeechToTextEndpoint): Promise<void> {
    const url = new URL(endpoint.url);
    url.searchParams.set("intent", "transcription");
    try {
      const socket = await openProviderSocket(url.toString(), {
        Authorization: `Bearer ${endpoint.apiKey}`,
        "X-Correlation-ID": `${endpoint.correlationId}:supervisor-stt`,
      });
      socket.addEventListener("message", (event) => this.onMessage(event.data));
      socket.addEventListener("close", (event) => this.fail(`closed ${event.code}`));
      socket.addEventListener("error", () => this.fail("socket error"));
      this.socket = socket;
      socket.send(JSON.stringify(SETUP));
      for (const message of this.pending ?? []) this.send(message, 0);
      this.pending = null;
      this.pendingBytes = 0;
      if (this.finished) this.closeAfterGrace(socket);
    } catch (error) {
      this.fail(error instanceof Error ? error.message : "connect failed");
    }
  }

  private onMessage(data: unknown): void {
    if (typeof data !== "string") return;
    let parsed: z.infer<typeof serverEvent> | undefined;
    try {
      parsed = serverEvent.safeParse(JSON.parse(data)).data;
    } catch {
      return;
    }
    if (!parsed) return;
    if (parsed.type === "error") {
      if (parsed.error.code !== EMPTY_COMMIT) this.fail(`error ${parsed.error.code ?? "unknown"}`);
      return;
    }
    if (parsed.transcript.trim()) this.host.heard(parsed.transcript.trim());
  }

  private send(message: string, bytes: number): void {
    try {
      this.socket!.send(message);
    } catch {
      this.untranscribedBytes += bytes;
      this.fail("send failed");
    }
  }

  /** Once: a warn without any text, the held frames counted as untranscribed, the socket closed. */
  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.untranscribedBytes += this.pendingBytes;
    this.pending = null;
    this.pendingBytes = 0;
    // After the release a close is the expected end, not a failure worth a log.
    if (!this.finished) this.host.log().warn("supervision.stt_failed", { reason });
    if (this.socket) this.closeSocket(this.socket);
  }

  private closeSocket(socket: WebSocket): void {
    this.failed = true;
    try {
      socket.close(1000, "takeover ended");
    } catch {
      // Already closed.
    }
  }
}
