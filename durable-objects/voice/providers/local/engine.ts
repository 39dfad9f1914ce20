import type { AudioFormat } from "../../../media/audio/audio-format.ts";
import { decodeAlaw, decodeMulaw, encodeAlaw, encodeMulaw } from "../../../media/audio/g711.ts";
import { base64Capacity, decodeBase64Into, decodePcm16le, encodeBase64, encodePcm16le } from "../../../media/audio/pcm16.ts";
import {
  type ConversationItem,
  dtmfText,
  logSessionConfigured,
  logSessionSetup,
  type ProviderConnectOptions,
  type ProviderEvent,
  type ProviderSessionConfig,
  type ToolDefinition,
  type VoiceProvider,
} from "../provider.ts";

/**
 * The `local` provider: an offline stand-in for a voice AI, in-process, needing no key or network, so
 * `npm run dev` and the simulators work anywhere. It hears turns by frame energy and answers each one audibly
 * with a fixed line in a synthetic voice. It runs on AUDIO time (caller audio received), never timers: the same
 * audio, however it is framed, gives the same events and the same bytes.
 *
 * Agent audio is released as caller audio arrives, RELEASE_SPEED times faster than real time (the way real
 * providers stream ahead of playback), so it relies on the carrier's continuous frames, silence included.
 *
 * A little over the ~300 lines a part aims at: it is a whole (small) voice engine — turn detection, replies as
 * audio, tools — behind the provider interface, with no wire protocol to split along.
 */

const ANALYSIS_FRAME_MS = 20;
/** Frame RMS above −40 dBFS counts as voiced: well above line noise, well below speech. */
const VOICED_RMS = 32768 * 10 ** (-40 / 20);
const VOICED_MEAN_SQUARE = VOICED_RMS * VOICED_RMS;
/** Voiced audio needed before speech counts as started, so clicks do not open a turn. */
const SPEECH_START_MS = 60;
/** Silence that ends the caller's turn (the hangover bridges pauses between words). */
const SPEECH_END_MS = 600;
const REPLY_CHUNK_MS = 100;
const RELEASE_SPEED = 4;
const MS_PER_CHARACTER = 60;
const MIN_REPLY_MS = 600;
const MAX_REPLY_MS = 10_000;
/** Carrier frames are 20 ms; 64 KiB of base64 is seconds of audio: larger is a caller bug, dropped. */
const MAX_AUDIO_BASE64_CHARS = 64 * 1024;
const MAX_TEXT_CHARS = 2_000;
const END_CALL_TOOL = "end_call";
/** The pound key (bare, or as the call's object words a digit) or "end call" asks for end_call. */
const isEndCallRequest = (text: string) => text === "#" || text === dtmfText("#") || text.toLowerCase() === "end call";

export async function connectLocalEngine(
  options: Pick<ProviderConnectOptions, "onEvent">,
  config: ProviderSessionConfig,
): Promise<VoiceProvider> {
  const engine = new LocalEngine(options.onEvent);
  await engine.connect(config);
  return engine;
}

/** The agent's lines, cycled per reply; the first quotes the instructions so a developer hears they applied. */
function agentLines(instructions: string, tools: ToolDefinition[]): string[] {
  const firstSentence = instructions.split(/[.!?\n]/)[0] ?? "";
  const opening = firstSentence.split(/\s+/).filter(Boolean).slice(0, 8).join(" ");
  const canEndCall = tools.some((tool) => tool.name === END_CALL_TOOL);
  return [
    `Hello, this is the local test voice. My instructions begin: ${opening || "none given"}.`,
    "I heard you. This offline engine answers every turn with a few fixed lines.",
    canEndCall ? "Thank you. Keep talking, or press the pound key to end the call." : "Thank you. Keep talking, I am listening.",
  ];
}

/**
 * A voice-like signal for `text`: a gliding ~120 Hz fundamental with five harmonics (all under 1 kHz, safe at
 * 8 kHz), voiced on letters and digits and silent between words, under a ~4 Hz syllable envelope.
 */
function synthesizeVoice(text: string, sampleRate: number): Int16Array {
  const characters = Array.from(text);
  const durationMs = Math.min(MAX_REPLY_MS, Math.max(MIN_REPLY_MS, characters.length * MS_PER_CHARACTER));
  const samples = new Int16Array(Math.round((durationMs * sampleRate) / 1000));
  const voiced = characters.map((character) => /[\p{L}\p{N}]/u.test(character));
  const characterMs = durationMs / Math.max(1, characters.length);
  // The gain follows its target over ~8 ms, so word edges fade instead of clicking.
  const smoothing = 1 - Math.exp(-1 / (0.008 * sampleRate));
  const harmonicSum = 1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5;
  let phase = 0;
  let gain = 0;
  for (let i = 0; i < samples.length; i++) {
    const seconds = i / sampleRate;
    const syllable = 0.6 + 0.4 * Math.sin(2 * Math.PI * 4 * seconds);
    gain += ((voiced[Math.floor((seconds * 1000) / characterMs)] ? syllable : 0) - gain) * smoothing;
    phase = (phase + (2 * Math.PI * (120 + 15 * Math.sin(2 * Math.PI * 0.8 * seconds))) / sampleRate) % (2 * Math.PI);
    let value = 0;
    for (let k = 1; k <= 5; k++) value += Math.sin(k * phase) / k;
    samples[i] = Math.round((value / harmonicSum) * gain * 0.3 * 32767);
  }
  return samples;
}

function encodeSamples(samples: Int16Array, format: AudioFormat): Uint8Array {
  if (format.encoding === "pcm16") {
    const bytes = new Uint8Array(samples.length * 2);
    encodePcm16le(samples, bytes);
    return bytes;
  }
  const bytes = new Uint8Array(samples.length);
  if (format.encoding === "pcmu") encodeMulaw(samples, bytes);
  else encodeAlaw(samples, bytes);
  return bytes;
}

interface LineAudio {
  /** Base64, REPLY_CHUNK_MS each. */
  chunks: string[];
  durationMs: number;
}

interface Reply {
  itemId: string;
  chunks: string[];
  sent: number;
  /** Caller audio position (ms) when the reply began. */
  startedAtMs: number;
}

class LocalEngine implements VoiceProvider {
  readonly name = "local" as const;
  private readonly onEvent: ProviderConnectOptions["onEvent"];
  private format: AudioFormat = { encoding: "pcmu", sampleRate: 8000 };
  private tools: ToolDefinition[] = [];
  private lines: string[] = [];
  /** Each line's audio in the call's format, synthesised on first use. */
  private readonly lineAudio = new Map<number, LineAudio>();
  private connected = false;
  private closed = false;
  // Per-frame working buffers, grown once to the frame size.
  private bytes = new Uint8Array(0);
  private samples = new Int16Array(0);
  private frame = new Int16Array(0);
  private frameFill = 0;
  // Turn detection, on audio time.
  private audioMs = 0;
  private speaking = false;
  private voicedRunMs = 0;
  private silentRunMs = 0;
  private callerTurns = 0;
  private replies = 0;
  private toolCalls = 0;
  private reply: Reply | null = null;
  /** Until when (caller audio ms) the far end is still playing agent audio, if played in real time. */
  private playingUntilMs = 0;
  private malformedFrames = 0;

  constructor(onEvent: ProviderConnectOptions["onEvent"]) {
    this.onEvent = onEvent;
  }

  get inputFormat(): AudioFormat {
    return this.format;
  }

  get outputFormat(): AudioFormat {
    return this.format;
  }

  /** History is not replayed: the engine's lines do not depend on it (a switch to `local` starts afresh). */
  async connect(config: ProviderSessionConfig): Promise<void> {
    if (this.connected || this.closed) throw new Error("a local engine session connects once");
    this.connected = true;
    this.format = config.callAudio;
    this.tools = config.tools;
    this.lines = agentLines(config.instructions, config.tools);
    this.frame = new Int16Array((this.format.sampleRate * ANALYSIS_FRAME_MS) / 1000);
    // In-process: the setup is taken as it is given.
    logSessionSetup(this, config);
    logSessionConfigured(this, config, 0);
  }

  sendAudio(base64: string): void {
    if (!this.connected || this.closed) return;
    if (base64.length > MAX_AUDIO_BASE64_CHARS) return this.malformed("audio frame too large");
    const capacity = base64Capacity(base64);
    if (this.bytes.length < capacity) this.bytes = new Uint8Array(capacity);
    let byteCount: number;
    try {
      byteCount = decodeBase64Into(base64, this.bytes);
    } catch {
      return this.malformed("audio frame is not base64");
    }
    const pcm16 = this.format.encoding === "pcm16";
    // A trailing half sample cannot be decoded; it is dropped (the carrier's framing bug, not ours to repair).
    const sampleCount = pcm16 ? byteCount >> 1 : byteCount;
    if (this.samples.length < sampleCount) this.samples = new Int16Array(capacity);
    const samples = this.samples.subarray(0, sampleCount);
    const bytes = this.bytes.subarray(0, pcm16 ? sampleCount * 2 : byteCount);
    if (pcm16) decodePcm16le(bytes, samples);
    else if (this.format.encoding === "pcmu") decodeMulaw(bytes, samples);
    else decodeAlaw(bytes, samples);

    // Fixed 20 ms analysis frames, whatever the carrier's framing: the framing cannot change the result.
    const frame = this.frame;
    for (let i = 0; i < samples.length && !this.closed; i++) {
      frame[this.frameFill++] = samples[i]!;
      if (this.frameFill === frame.length) {
        this.frameFill = 0;
        this.analyseFrame(frame);
      }
    }
  }

  /** "#" (DTMF) or "end call" asks for `end_call` when configured; other text is a caller turn of its own. */
  sendText(text: string): void {
    if (!this.connected || this.closed) return;
    const content = text.trim().slice(0, MAX_TEXT_CHARS);
    if (!content) return;
    if (isEndCallRequest(content)) {
      if (!this.tools.some((tool) => tool.name === END_CALL_TOOL)) return;
      this.emit({ type: "tool_call", callId: `local-call-${++this.toolCalls}`, name: END_CALL_TOOL, arguments: "{}" });
      return;
    }
    this.respond(content);
  }

  /** The engine's lines are fixed: guidance and context change nothing it says. */
  guide(_text: string): void {}

  addContext(_items: ConversationItem[]): void {}

  /** Nothing to do with results: the engine's lines do not depend on them. */
  sendToolResult(_callId: string, _name: string, _result: string): void {}

  interrupt(itemId: string, _heardMs: number): void {
    if (this.reply?.itemId !== itemId) return;
    this.reply = null;
    this.playingUntilMs = this.audioMs; // the far end flushed its playback
  }

  /** Final: no events follow. */
  close(): void {
    this.closed = true;
    this.reply = null;
  }

  // Per-frame path: a sum of squares and a few comparisons; no allocation, no logging, no timers.
  private analyseFrame(frame: Int16Array): void {
    let energy = 0;
    for (let i = 0; i < frame.length; i++) energy += frame[i]! * frame[i]!;
    const voiced = energy / frame.length > VOICED_MEAN_SQUARE;
    this.audioMs += ANALYSIS_FRAME_MS;
    if (!this.speaking) {
      this.voicedRunMs = voiced ? this.voicedRunMs + ANALYSIS_FRAME_MS : 0;
      if (this.voicedRunMs >= SPEECH_START_MS) {
        this.speaking = true;
        this.silentRunMs = 0;
        this.callerStartedSpeaking();
      }
    } else {
      this.silentRunMs = voiced ? 0 : this.silentRunMs + ANALYSIS_FRAME_MS;
      if (this.silentRunMs >= SPEECH_END_MS) {
        this.speaking = false;
        this.voicedRunMs = 0;
        this.emit({ type: "caller_speech_stopped" });
        this.respond(`(caller turn ${++this.callerTurns})`);
      }
    }
    this.releaseAgentAudio();
  }

  private callerStartedSpeaking(): void {
    if (this.audioMs >= this.playingUntilMs) return;
    // Barge-in: like the real services, the engine stops its reply by itself; the rest is never sent.
    this.reply = null;
    this.playingUntilMs = this.audioMs;
    this.emit({ type: "caller_speech_started" });
  }

  /** A reply supersedes one still being sent (text typed while the agent talks). */
  private respond(callerText: string): void {
    const lineIndex = this.replies++ % this.lines.length;
    const itemId = `local-reply-${this.replies}`;
    const { chunks, durationMs } = this.audioOfLine(lineIndex);
    this.reply = { itemId, chunks, sent: 0, startedAtMs: this.audioMs };
    this.playingUntilMs = this.audioMs + durationMs;
    this.emit({ type: "transcript", role: "caller", text: callerText });
    this.emit({ type: "transcript", role: "agent", text: this.lines[lineIndex]!, itemId });
    this.releaseAgentAudio();
  }

  private audioOfLine(lineIndex: number): LineAudio {
    const cached = this.lineAudio.get(lineIndex);
    if (cached) return cached;
    const bytes = encodeSamples(synthesizeVoice(this.lines[lineIndex]!, this.format.sampleRate), this.format);
    const bytesPerMs = (this.format.sampleRate / 1000) * (this.format.encoding === "pcm16" ? 2 : 1);
    const chunkBytes = bytesPerMs * REPLY_CHUNK_MS;
    const chunks: string[] = [];
    for (let offset = 0; offset < bytes.length; offset += chunkBytes)
      chunks.push(encodeBase64(bytes.subarray(offset, offset + chunkBytes)));
    const audio = { chunks, durationMs: bytes.length / bytesPerMs };
    this.lineAudio.set(lineIndex, audio);
    return audio;
  }

  /** Sends the reply's chunks that are due: the first at once, then RELEASE_SPEED × the caller audio since. */
  private releaseAgentAudio(): void {
    const reply = this.reply;
    if (!reply) return;
    const dueMs = (this.audioMs - reply.startedAtMs) * RELEASE_SPEED + REPLY_CHUNK_MS;
    // The handler may interrupt or close from inside an event: re-check that this reply is still current.
    while (this.reply === reply && reply.sent < reply.chunks.length && reply.sent * REPLY_CHUNK_MS < dueMs) {
      this.emit({ type: "agent_audio", base64: reply.chunks[reply.sent++]!, itemId: reply.itemId });
    }
    if (this.reply === reply && reply.sent === reply.chunks.length) {
      this.reply = null;
      this.emit({ type: "agent_audio_done", itemId: reply.itemId });
    }
  }

  private malformed(reason: string): void {
    const count = ++this.malformedFrames;
    // Reported at counts 1, 2, 4, 8…: a stream of bad frames cannot flood the call's log.
    if ((count & (count - 1)) === 0) {
      this.emit({ type: "error", code: "malformed_audio", message: `${reason} (${count} so far)`, fatal: false });
    }
  }

  private emit(event: ProviderEvent): void {
    if (this.closed) return;
    try {
      this.onEvent(event);
    } catch {
      // The call's handler owns its failures; one must not stop the engine.
    }
  }
}
