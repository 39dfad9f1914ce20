import { metrics } from "../../workers/shared/observability/metrics.ts";
import type { TurnRecord } from "../../workers/shared/turn-timings.ts";
import type { AudioFormat } from "../media/audio/audio-format.ts";
import { base64ByteLength } from "../media/audio/pcm16.ts";
import { bytesPerMs, createTranscoder, sameFormat, type Transcode } from "../media/audio/transcoder.ts";
import type { AudioTap } from "../media/audio-tap.ts";
import type { CallerLeg } from "../media/caller-leg.ts";
import { CallerTurns } from "./caller-turns.ts";
import { Playback } from "./playback.ts";
import type { VoiceProvider } from "./providers/provider.ts";
import { TurnClock } from "./turn-clock.ts";

/** 10 s of 20 ms frames: what the caller says while the provider reconnects is delivered, up to this bound. */
export const MAX_BUFFERED_FRAMES = 500;
/** Carriers send 50 frames a second (bursts after a network stall run faster); ten times that is a broken or hostile sender. */
const MAX_FRAMES_PER_SECOND = 500;
/**
 * One frame in this many per direction is timed into `media_frame_delay_seconds`: the delay the object added. A frame
 * relayed in the event it arrived in adds none the object's clock can see (Workers clocks stand still while code
 * runs; the load bench measures the stack's real figure); a frame held while a provider was away adds its hold,
 * and every held frame is timed.
 */
const DELAY_SAMPLE_EVERY = 50;
/** Agent audio this recent means the provider is answering (or just did): a caller turn owes no reply. */
const RECENT_AGENT_AUDIO_MS = 1_500;

/** What the bridge counts, shared with the voice session's stats. */
export interface BridgeStats {
  callerFrames: number;
  /** Caller frames that could not reach a provider: over the buffer bound while disconnected, or over the rate bound. */
  callerFramesDropped: number;
  agentChunks: number;
}

/** The conversation around the bridge: the caller's leg, the provider audio goes to, a switch under way. */
export interface BridgeHost {
  leg(): CallerLeg | null;
  /** The provider caller audio goes to now; null while it is away (frames are then buffered). */
  connectedProvider(): VoiceProvider | null;
  /** During a switch, also holds the frame for the next provider; true when the hold is full (a frame dropped). */
  holdForSwitch(base64: string): boolean;
  /** A switch is under way: the held audio goes to the new provider, nothing is buffered for the old one. */
  switching(): boolean;
  closed(): boolean;
  /** The caller spoke and stopped while the agent was quiet: the provider owes a reply. */
  callerTurnEnded(): void;
  /** An agent turn is over: its latency at the caller's ear (turn-clock.ts). */
  turnCompleted(turn: TurnRecord): void;
}

/**
 * The per-frame path of the conversation, both ways: caller frames rate-bounded, watched for the end of a caller
 * turn, transcoded and sent to the provider (or buffered while it is away); agent audio transcoded, sent to the
 * caller with a mark after each chunk, and what the caller actually heard followed from the echoed marks, so a
 * barge-in stops playback at once and knows how much was heard; each reply's first chunk, frame and echoed mark are
 * timed (turn-clock.ts). Nothing here awaits, touches storage or logs.
 */
export class MediaBridge {
  private readonly buffered: string[] = [];
  /** When each buffered frame arrived (only frames held while the provider is away: not the common path). */
  private readonly bufferedAt: number[] = [];
  private readonly delayIn = metrics.histogram("media_frame_delay_seconds", { direction: "in" });
  private readonly delayOut = metrics.histogram("media_frame_delay_seconds", { direction: "out" });
  private unsampledIn = 0;
  private unsampledOut = 0;
  private readonly turns = new CallerTurns();
  private readonly playback: Playback;
  private readonly clock: TurnClock;
  private toProvider: Transcode = (audio) => audio;
  private toCaller: Transcode & { reset(): void } = Object.assign((audio: string) => audio, { reset() {} });
  private transcodersFor: { inbound: AudioFormat; outbound: AudioFormat; provider: VoiceProvider; leg: CallerLeg | null } | null = null;
  private frameWindow = { second: 0, frames: 0 };
  private lastAgentAudio = 0;

  constructor(
    private readonly host: BridgeHost,
    /** The call's audio before a leg is known (the leg's own format wins once it is). */
    private readonly callAudio: AudioFormat,
    private readonly stats: BridgeStats,
    /** The recording's ear on both directions (a null check per frame when the session is not recorded). */
    private readonly tap: AudioTap,
  ) {
    this.playback = new Playback(() => this.host.leg()?.echoesMarks ?? true);
    this.clock = new TurnClock((turn) => this.host.turnCompleted(turn));
  }

  // ── caller → provider ──────────────────────────────────────────────────────────────────────────────────

  /** One caller frame; `decoded`, when given, is its bytes, so turn detection need not decode it again. */
  callerAudio(base64: string, decoded?: Uint8Array): void {
    this.stats.callerFrames++;
    const second = Math.floor(Date.now() / 1000);
    if (this.frameWindow.second !== second) this.frameWindow = { second, frames: 0 };
    if (++this.frameWindow.frames > MAX_FRAMES_PER_SECOND) {
      this.stats.callerFramesDropped++;
      return;
    }
    // One lookup of the leg per frame: it is reached through the session's channel (several calls deep).
    const leg = this.host.leg();
    const format = leg?.inbound ?? this.callAudio;
    this.tap.caller(base64, format);
    if (this.turns.push(base64, format, decoded) && Date.now() - this.lastAgentAudio > RECENT_AGENT_AUDIO_MS) {
      this.host.callerTurnEnded();
    }
    this.forward(base64, leg);
  }

  /** What the caller said while the provider was away (and, after a switch, during the swap) goes out, in order. */
  deliverBuffered(heldForSwitch: string[] = []): void {
    const now = Date.now();
    for (const at of this.bufferedAt.splice(0)) this.delayIn.observe((now - at) / 1000);
    const leg = this.host.leg();
    for (const frame of [...this.buffered.splice(0), ...heldForSwitch]) this.forward(frame, leg);
  }

  /** A caller frame to the provider, or held while a switch is made or the provider is away. */
  private forward(base64: string, leg: CallerLeg | null): void {
    if (this.host.holdForSwitch(base64)) this.stats.callerFramesDropped++;
    const provider = this.host.connectedProvider();
    if (provider) {
      this.ensureTranscoders(provider, leg);
      const audio = this.toProvider(base64);
      if (audio) provider.sendAudio(audio);
      if (++this.unsampledIn === DELAY_SAMPLE_EVERY) {
        this.unsampledIn = 0;
        this.delayIn.observe(0);
      }
      return;
    }
    // During a switch the held audio already goes to the new provider.
    if (this.host.closed() || this.host.switching()) return;
    this.buffered.push(base64);
    this.bufferedAt.push(Date.now());
    if (this.buffered.length > MAX_BUFFERED_FRAMES) {
      this.buffered.shift();
      this.bufferedAt.shift();
      this.stats.callerFramesDropped++;
    }
  }

  // ── provider → caller ──────────────────────────────────────────────────────────────────────────────────

  /** Whether the caller cut this reply off: its late audio and transcript are marked, not played. */
  isInterrupted(itemId: string): boolean {
    return this.playback.isInterrupted(itemId);
  }

  /** One chunk of the agent's reply to the caller, with a mark after it where the leg echoes marks. */
  playToCaller(base64: string, itemId: string, provider: VoiceProvider, leg: CallerLeg): void {
    this.clock.agentAudio(itemId, provider.name, this.turns.speechEndedAt);
    this.ensureTranscoders(provider, leg);
    const audio = this.toCaller(base64);
    if (!audio) return;
    const mark = this.playback.sent(itemId, base64ByteLength(audio) / bytesPerMs(leg.outbound));
    leg.sendAudio(audio);
    this.tap.agent(audio, leg.outbound, itemId, leg.echoesMarks ? mark : null);
    this.clock.frameSent();
    if (leg.echoesMarks) leg.mark(mark);
    this.stats.agentChunks++;
    this.lastAgentAudio = Date.now();
    if (++this.unsampledOut === DELAY_SAMPLE_EVERY) {
      this.unsampledOut = 0;
      this.delayOut.observe(0);
    }
  }

  /** Barge-in: playback stops at once; answers what was cut off and how much of it the caller heard. */
  stopPlayback(): { itemId: string; heardMs: number } | null {
    const leg = this.host.leg();
    if (!leg || !this.playback.audible()) return null;
    leg.clear();
    const cut = this.playback.interrupt();
    // What was sent after what the caller heard is not the recording's either.
    this.tap.cut(cut);
    this.toCaller.reset();
    this.clock.end(cut !== null);
    return cut;
  }

  /** A carrier echoed one of our marks: the audio before it has played (the first one, that the caller heard it). */
  markPlayed(name: string): void {
    this.tap.heard(name);
    if (this.playback.markPlayed(name)) this.clock.markHeard();
  }

  /** The provider says the caller finished speaking (its own turn detection). */
  callerStopped(): void {
    this.clock.callerStopped();
  }

  /** When the provider last said the caller finished speaking (epoch ms, 0 = never). */
  get providerHeardStopAt(): number {
    return this.clock.providerHeardStopAt;
  }

  /** The agent's audio is playing to the caller now. */
  agentSpeaking(): boolean {
    return !!this.host.leg() && this.playback.audible();
  }

  get lastAgentAudioAt(): number {
    return this.lastAgentAudio;
  }

  // ── changes around the bridge ──────────────────────────────────────────────────────────────────────────

  /** A new caller leg (the carrier reconnected its stream, or the leg's format is now known). */
  legChanged(): void {
    this.transcodersFor = null;
    this.playback.reset();
    // The old leg's unplayed audio went with it.
    this.tap.cut(null);
    this.clock.end(false);
  }

  /** A new provider session: formats are chosen again on the next frame. */
  providerChanged(): void {
    this.transcodersFor = null;
  }

  /** The provider was lost: what it was saying is not playing any more. */
  providerLost(): void {
    this.playback.reset();
    this.clock.end(false);
  }

  close(): void {
    this.buffered.length = 0;
    this.clock.end(false);
  }

  /**
   * Caller audio is decoded as the leg receives it, agent audio encoded as the leg must be sent: a carrier that
   * streams A-law in while it was asked to play µ-law back hears µ-law, never the inbound codec.
   */
  private ensureTranscoders(provider: VoiceProvider, leg: CallerLeg | null): void {
    const current = this.transcodersFor;
    // Per frame: the leg and provider of the previous frame (a leg's formats are fixed) need no comparison.
    if (current && current.provider === provider && current.leg === leg) return;
    const inbound = leg?.inbound ?? this.callAudio;
    const outbound = leg?.outbound ?? this.callAudio;
    if (!current || current.provider !== provider || !sameFormat(current.inbound, inbound) || !sameFormat(current.outbound, outbound)) {
      this.toProvider = createTranscoder(inbound, provider.inputFormat);
      this.toCaller = createTranscoder(provider.outputFormat, outbound);
    }
    this.transcodersFor = { inbound, outbound, provider, leg };
  }
}
