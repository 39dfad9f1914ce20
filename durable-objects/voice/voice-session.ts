import { increment } from "../../workers/shared/counters.ts";
import type { SwitchReason } from "../../workers/shared/db/schema.ts";
import type { LiveEvent, ProviderLinkState } from "../../workers/shared/live-protocol.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import type { HealthReport } from "../../workers/shared/provider-health.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import type { TranscriptLog } from "../call/transcript-log.ts";
import type { AudioFormat } from "../media/audio/audio-format.ts";
import { base64ByteLength } from "../media/audio/pcm16.ts";
import { bytesPerMs, createTranscoder, sameFormat, type Transcode } from "../media/audio/transcoder.ts";
import type { CallerLeg } from "../media/caller-leg.ts";
import type { SwitchEntry } from "../session/switch-log.ts";
import { CallerTurns } from "./caller-turns.ts";
import type { CircuitBreakers } from "./circuit-breaker.ts";
import { Playback } from "./playback.ts";
import { ProviderLink } from "./provider-link.ts";
import {
  type ConversationItem,
  dtmfText,
  type ProviderEvent,
  type ProviderSessionConfig,
  type VoiceProvider,
} from "./providers/provider.ts";
import { Switcher } from "./switcher.ts";
import type { ToolHost, ToolRunner } from "./tools.ts";
import { TurnWatchdog } from "./turn-watchdog.ts";

/**
 * The conversation inside the call's object: carries the caller's audio to one voice AI provider and the agent's
 * audio back, follows what the caller actually heard (from the marks the carrier echoes), handles barge-in, DTMF,
 * tool calls and transcripts, and keeps the provider connected: a circuit breaker per provider, reconnection with
 * backoff and jitter, caller audio held in a bounded buffer meanwhile, and the conversation replayed on reconnect.
 *
 * The per-frame paths (`callerAudio`, agent audio) never await, never touch storage and never log.
 */

/** Where the caller is: a carrier media stream or a browser. */
export interface VoiceSessionHost {
  leg(): CallerLeg | null;
  publish(event: LiveEvent): void;
  log(): Logger;
  /** A transcript line was written: drain it to D1 soon, off the audio path. */
  transcriptChanged(): void;
  hangup(reason: string): Promise<void>;
  transfer(reason: string): Promise<string>;
  connect(provider: ProviderName, onEvent: (event: ProviderEvent) => void, config: ProviderSessionConfig): Promise<VoiceProvider>;
  /** Whether the provider can be dialled with this deployment's settings. */
  configured(provider: ProviderName): boolean;
  /** The fleet registry's view of a provider (cached briefly); "unknown" when it cannot be reached. */
  fleetState(provider: ProviderName): Promise<string>;
  reportHealth(report: HealthReport): void;
  /** The session now runs on `provider` (persist it); and a finished switch, for the durable history. */
  providerChanged(provider: ProviderName): void;
  switchRecorded(entry: SwitchEntry): void;
}

export interface VoicePolicy {
  reconnectBaseMs: number;
  reconnectAttempts: number;
  responseTimeoutMs: number;
  /** Failover order (PROVIDER_ORDER). */
  order: ProviderName[];
  /** A lost provider not back within this long (by the next attempt's time) is failed over from. */
  failoverAfterMs: number;
  /** After an agent turn, the fleet registry is asked about the provider at most this often. */
  fleetCheckIntervalMs: number;
}

export interface SwitchOptions {
  preserveContext: boolean;
  reason: SwitchReason;
  /** Cut over now, interrupting the agent, instead of at the next pause between turns. */
  immediate: boolean;
}

export interface SwitchResult {
  success: boolean;
  fromProvider: ProviderName;
  toProvider: ProviderName;
  contextPreserved: number;
  switchedAt: string | null;
  durationMs: number;
  error: string | null;
}

export interface VoiceSessionOptions {
  provider: ProviderName;
  instructions: string;
  callAudio: AudioFormat;
  correlationId: string;
  transcript: TranscriptLog;
  tools: ToolRunner;
  breakers: CircuitBreakers;
  policy: VoicePolicy;
  /**
   * The latest resumption handle a provider gave (Gemini sends one every turn), kept in storage by the owner; it
   * resumes only a session of the provider that issued it. `null` forgets it.
   */
  resumption: { get(): ResumptionHandle | undefined; set(handle: ResumptionHandle | null): void };
}

export interface ResumptionHandle {
  provider: ProviderName;
  handle: string;
}

export interface VoiceStats {
  callerFrames: number;
  /** Caller frames that could not reach a provider: over the buffer bound while disconnected, or over the rate bound. */
  callerFramesDropped: number;
  agentChunks: number;
  bargeIns: number;
  reconnects: number;
  providerErrors: number;
  toolCalls: number;
}

/** 10 s of 20 ms frames: what the caller says while the provider reconnects is delivered, up to this bound. */
export const MAX_BUFFERED_FRAMES = 500;
/** Carriers send 50 frames a second (bursts after a network stall run faster); ten times that is a broken or hostile sender. */
const MAX_FRAMES_PER_SECOND = 500;
/** Agent audio this recent means the provider is answering (or just did): a caller turn owes no reply. */
const RECENT_AGENT_AUDIO_MS = 1_500;
const MAX_HISTORY_LINES = 60;

export class VoiceSession implements ToolHost {
  private toolsInFlight = 0;
  private closed = false;
  private readonly buffered: string[] = [];
  private readonly turns = new CallerTurns();
  private toProvider: Transcode = (audio) => audio;
  private toCaller: Transcode & { reset(): void } = Object.assign((audio: string) => audio, { reset() {} });
  private transcodersFor: { leg: AudioFormat; provider: VoiceProvider } | null = null;
  private readonly playback = new Playback(() => this.host.leg()?.echoesMarks ?? true);
  private lastAgentAudioAt = 0;
  private agentRepliedSinceCallerTurn = true;
  private readonly watchdog: TurnWatchdog;
  private readonly switcher: Switcher;
  private readonly link: ProviderLink;
  private frameWindow = { second: 0, frames: 0 };
  readonly stats: VoiceStats = {
    callerFrames: 0,
    callerFramesDropped: 0,
    agentChunks: 0,
    bargeIns: 0,
    reconnects: 0,
    providerErrors: 0,
    toolCalls: 0,
  };

  constructor(
    private readonly host: VoiceSessionHost,
    private readonly options: VoiceSessionOptions,
  ) {
    this.link = new ProviderLink(
      options.provider,
      {
        dial: (provider, onEvent) =>
          this.host.connect(provider, onEvent, this.sessionConfig(this.history(), this.resumptionHandleFor(provider))),
        onEvent: (generation, event) => this.onProviderEvent(generation, event),
        failover: () => this.failover(),
        switching: () => this.switcher.active,
        installed: () => {
          this.transcodersFor = null;
        },
        reconnected: () => {
          for (const frame of this.buffered.splice(0)) this.forward(frame);
        },
        lost: () => {
          this.playback.reset();
          this.stats.reconnects++;
        },
      },
      host,
      options.breakers,
      options.policy,
    );
    this.watchdog = new TurnWatchdog(options.policy.responseTimeoutMs, {
      // A provider that is already reconnecting gets the conversation replayed; only a connected one has stalled.
      stalled: () => {
        if (this.link.state !== "connected") return;
        increment("provider_stalls_total", { provider: this.link.name });
        this.link.lose("no reply within the response timeout");
      },
      hangup: (reason) => void this.host.hangup(reason),
      agentSpeaking: () => this.agentSpeaking(),
      lastAgentAudioAt: () => this.lastAgentAudioAt,
    });
    const voice = this;
    this.switcher = new Switcher(
      {
        get closed() {
          return voice.closed;
        },
        get providerName() {
          return voice.link.name;
        },
        newGeneration: () => this.link.newGeneration(),
        history: () => this.history(),
        resumptionHandleFor: (provider) => this.resumptionHandleFor(provider),
        connect: (provider, generation, history, handle) =>
          this.host.connect(provider, (event) => this.onProviderEvent(generation, event), this.sessionConfig(history, handle)),
        busy: () => this.agentSpeaking() || this.toolsInFlight > 0,
        cutOver: (next, to, generation, detail, heldAudio) => this.cutOver(next, to, generation, detail, heldAudio),
        reconnectIfLost: () => this.link.reconnectIfLost(),
      },
      host,
      options.breakers,
      options.policy,
    );
  }

  get currentProvider(): ProviderName {
    return this.link.name;
  }

  get state(): ProviderLinkState {
    return this.link.state;
  }

  /** Opens the provider session at once (at the webhook, before media flows), so the caller never waits for it. */
  start(): void {
    void this.link.connect();
  }

  // ── caller → provider (per frame) ──────────────────────────────────────────────────────────────────────

  callerAudio(base64: string): void {
    this.stats.callerFrames++;
    const second = Math.floor(Date.now() / 1000);
    if (this.frameWindow.second !== second) this.frameWindow = { second, frames: 0 };
    if (++this.frameWindow.frames > MAX_FRAMES_PER_SECOND) {
      this.stats.callerFramesDropped++;
      return;
    }
    // The caller spoke and stopped while the agent has been quiet: the provider owes a reply (stall detection).
    if (
      this.turns.push(base64, this.host.leg()?.format ?? this.options.callAudio) &&
      Date.now() - this.lastAgentAudioAt > RECENT_AGENT_AUDIO_MS
    ) {
      this.watchdog.awaitReply();
    }
    this.forward(base64);
  }

  /** A caller frame to the provider, or held while a switch is made or the provider is away. */
  private forward(base64: string): void {
    if (this.switcher.hold(base64)) this.stats.callerFramesDropped++;
    const provider = this.link.provider;
    if (provider && this.link.state === "connected") {
      this.ensureTranscoders(provider);
      const audio = this.toProvider(base64);
      if (audio) provider.sendAudio(audio);
      return;
    }
    // During a switch the held audio already goes to the new provider.
    if (this.closed || this.switcher.active) return;
    // Held while the provider (re)connects, and delivered when it is back.
    this.buffered.push(base64);
    if (this.buffered.length > MAX_BUFFERED_FRAMES) {
      this.buffered.shift();
      this.stats.callerFramesDropped++;
    }
  }

  dtmf(digit: string): void {
    this.host.publish({ type: "dtmf", digit, at: Date.now() });
    this.appendTranscript("caller", dtmfText(digit), null);
    this.sendText(dtmfText(digit));
  }

  /** Text for the agent from outside the audio (DTMF, later a supervisor's whisper). */
  sendText(text: string): void {
    if (!this.link.provider || this.link.state !== "connected") return;
    this.link.provider.sendText(text);
    this.watchdog.awaitReply();
  }

  /** Agent audio is being relayed to the caller now (a chunk arrived within `withinMs`): not a moment for a commit. */
  relayingAgentAudio(withinMs: number): boolean {
    return Date.now() - this.lastAgentAudioAt < withinMs;
  }

  /** A carrier echoed one of our marks: the audio before it has played. */
  markPlayed(name: string): void {
    this.playback.markPlayed(name);
  }

  /** A new caller leg (the carrier reconnected its stream, or the leg's format is now known). */
  legChanged(): void {
    this.transcodersFor = null;
    this.playback.reset();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watchdog.close();
    this.link.close();
    this.buffered.length = 0;
  }

  // ── tools ────────────────────────────────────────────────────────────────────────────────────────────────

  async endCall(reason: string): Promise<string> {
    this.watchdog.endCall(reason);
    return JSON.stringify({ ok: true, note: "The call ends once your last words have played." });
  }

  transferToHuman(reason: string): Promise<string> {
    return this.host.transfer(reason);
  }

  // ── provider → caller ──────────────────────────────────────────────────────────────────────────────────

  private onProviderEvent(generation: number, event: ProviderEvent): void {
    if (this.closed) return;
    if (this.switcher.eventOfNext(generation, event)) return;
    if (generation !== this.link.generation) return;
    try {
      this.handleProviderEvent(event);
    } catch (error) {
      increment("voice_event_handler_errors_total", { provider: this.link.name });
      this.host.log().error("voice.event_handler_failed", { event: event.type, error });
    }
  }

  private handleProviderEvent(event: ProviderEvent): void {
    switch (event.type) {
      case "agent_audio":
        return this.agentAudio(event.base64, event.itemId);
      case "agent_audio_done":
        this.options.breakers.success(this.link.name);
        void this.switcher.checkFleetHealth();
        return;
      case "caller_speech_started":
        this.agentRepliedSinceCallerTurn = false;
        return this.bargeIn();
      case "transcript":
        if (event.role === "agent") this.agentActivity();
        else if (!this.agentRepliedSinceCallerTurn) this.watchdog.awaitReply();
        this.appendTranscript(event.role, event.text, event.itemId ?? null);
        return;
      case "tool_call":
        this.agentActivity();
        void this.runTool(event.callId, event.name, event.arguments);
        return;
      case "resumption_handle":
        this.options.resumption.set({ provider: this.link.name, handle: event.handle });
        return;
      case "ending_soon":
        // The provider's session cap is near (Gemini's goAway, OpenAI's fixed lifetime): a fresh session takes over
        // with the conversation.
        this.host.log().info("voice.provider_ending_soon", { provider: this.link.name, timeLeftMs: event.timeLeftMs });
        void this.switchTo(this.link.name, { preserveContext: true, reason: "rollover", immediate: false });
        return;
      case "error":
        this.stats.providerErrors++;
        this.host.reportHealth({ provider: this.link.name, kind: "error", at: Date.now() });
        increment("provider_errors_total", { provider: this.link.name, code: event.code.slice(0, 64) });
        this.host.log().warn("voice.provider_error", { provider: this.link.name, code: event.code, fatal: event.fatal });
        if (event.fatal) this.link.lose(`error ${event.code}`);
        return;
      case "closed":
        return this.link.lose(`closed ${event.code}`);
    }
  }

  private agentAudio(base64: string, itemId: string): void {
    if (this.playback.isInterrupted(itemId)) return;
    const leg = this.host.leg();
    const provider = this.link.provider;
    if (!leg || !provider) return;
    const owedSince = this.watchdog.awaitingSince;
    if (owedSince !== null) {
      this.host.reportHealth({
        provider: this.link.name,
        kind: "response",
        latencyMs: Date.now() - owedSince,
        at: Date.now(),
      });
    }
    this.agentActivity();
    this.ensureTranscoders(provider);
    const audio = this.toCaller(base64);
    if (!audio) return;
    const mark = this.playback.sent(itemId, base64ByteLength(audio) / bytesPerMs(leg.format));
    leg.sendAudio(audio);
    if (leg.echoesMarks) leg.mark(mark);
    this.stats.agentChunks++;
    this.lastAgentAudioAt = Date.now();
  }

  /** The caller talks over the agent: stop playback at once, then tell the provider how much was heard. */
  private bargeIn(): void {
    const leg = this.host.leg();
    if (!leg || !this.playback.audible()) return;
    leg.clear();
    const { itemId, heardMs } = this.playback.interrupt()!;
    this.toCaller.reset();
    this.link.provider?.interrupt(itemId, heardMs);
    this.stats.bargeIns++;
    this.options.transcript.markInterrupted(itemId);
    this.host.publish({ type: "barge_in", itemId, heardMs, at: Date.now() });
    this.host.transcriptChanged();
  }

  private agentActivity(): void {
    this.agentRepliedSinceCallerTurn = true;
    this.watchdog.replied();
  }

  private appendTranscript(role: "caller" | "agent", text: string, itemId: string | null): void {
    if (!text.trim()) return;
    const line = this.options.transcript.append({
      role,
      text,
      provider: this.link.name,
      interrupted: itemId !== null && this.playback.isInterrupted(itemId),
      itemId,
      at: Date.now(),
    });
    this.host.publish({ type: "transcript", role, text: line.text, provider: line.provider, interrupted: line.interrupted, at: line.at });
    this.host.transcriptChanged();
  }

  private async runTool(callId: string, name: string, args: string): Promise<void> {
    this.stats.toolCalls++;
    const askedBy = this.link.generation;
    this.toolsInFlight++;
    this.host.publish({ type: "tool_call", callId, name, status: "started", result: null, at: Date.now() });
    let outcome: Awaited<ReturnType<ToolRunner["run"]>>;
    try {
      outcome = await this.options.tools.run(callId, name, args, this);
    } finally {
      this.toolsInFlight--;
    }
    this.host.publish({ type: "tool_call", callId, name, status: outcome.status, result: outcome.result, at: Date.now() });
    if (outcome.replayed) this.host.log().info("voice.tool_call_replayed", { name, callId });
    if (this.closed || !this.link.provider) return;
    // A provider that took over meanwhile never saw the call: it is told the result as context instead.
    if (this.link.generation === askedBy) this.link.provider.sendToolResult(callId, name, outcome.result);
    else this.link.provider.sendText(`[Tool ${name} returned: ${outcome.result}]`);
    this.watchdog.awaitReply();
  }

  // ── provider lifecycle ─────────────────────────────────────────────────────────────────────────────────

  private resumptionHandleFor(provider: ProviderName): string | undefined {
    const stored = this.options.resumption.get();
    return stored?.provider === provider ? stored.handle : undefined;
  }

  private sessionConfig(history: ConversationItem[], resumptionHandle: string | undefined): ProviderSessionConfig {
    return {
      instructions: this.options.instructions,
      tools: this.options.tools.definitions(),
      history,
      callAudio: this.options.callAudio,
      correlationId: this.options.correlationId,
      resumptionHandle,
    };
  }

  // ── switching providers (voice/switcher.ts) ────────────────────────────────────────────────────────────

  switchTo(to: ProviderName, options: SwitchOptions): Promise<SwitchResult> {
    return this.switcher.switchTo(to, options);
  }

  failover(): Promise<boolean> {
    return this.switcher.failover();
  }

  get lastSwitch(): SwitchResult | null {
    return this.switcher.lastSwitch;
  }

  get switchInProgress(): { toProvider: ProviderName; startedAt: number } | null {
    return this.switcher.inProgress;
  }

  /** A switch's cut-over: an agent still talking is interrupted the way a barge-in is (clear, truncate). */
  private cutOver(next: VoiceProvider, to: ProviderName, generation: number, detail: string, heldAudio: string[]): void {
    const from = this.link.name;
    this.bargeIn();
    const old = this.link.provider;
    this.link.use(next, to, generation);
    old?.close();
    if (to !== from) this.options.resumption.set(null);
    this.host.providerChanged(to);
    this.link.setState("connected", detail);
    // What the caller said during the swap (and while the old provider was down) reaches the new one, in order.
    for (const frame of [...this.buffered.splice(0), ...heldAudio]) this.forward(frame);
  }

  private agentSpeaking(): boolean {
    return !!this.host.leg() && this.playback.audible();
  }

  /** The conversation so far, oldest first: transcript lines and finished tool calls. */
  private history(): ConversationItem[] {
    const lines = this.options.transcript.recent(MAX_HISTORY_LINES).filter((line) => line.role !== "system");
    const tools = this.options.tools.history();
    const items: Array<{ at: number; item: ConversationItem }> = [
      ...lines.map((line) => ({ at: line.at, item: { kind: "message" as const, role: line.role as "caller" | "agent", text: line.text } })),
      ...tools,
    ];
    return items.sort((a, b) => a.at - b.at).map((entry) => entry.item);
  }

  private ensureTranscoders(provider: VoiceProvider): void {
    const leg = this.host.leg();
    const legFormat = leg?.format ?? this.options.callAudio;
    const current = this.transcodersFor;
    if (current && current.provider === provider && sameFormat(current.leg, legFormat)) return;
    this.toProvider = createTranscoder(legFormat, provider.inputFormat);
    this.toCaller = createTranscoder(provider.outputFormat, legFormat);
    this.transcodersFor = { leg: legFormat, provider };
  }
}
