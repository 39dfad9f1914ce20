import { RunningSentiment } from "../../workers/shared/analysis/lexicon.ts";
import type { ProviderLinkState } from "../../workers/shared/live-protocol.ts";
import { metrics } from "../../workers/shared/observability/metrics.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import type { TranscriptLine } from "../call/transcript-log.ts";
import { MediaBridge } from "./media-bridge.ts";
import { ProviderLink } from "./provider-link.ts";
import {
  type ConversationItem,
  dtmfText,
  type ImageFrame,
  type ProviderEvent,
  type ProviderSessionConfig,
  type VoiceProvider,
} from "./providers/provider.ts";
import { Switcher } from "./switcher.ts";
import type { ToolHost, ToolRunner } from "./tools.ts";
import { TurnWatchdog } from "./turn-watchdog.ts";
import type { SwitchOptions, SwitchResult, VoiceSessionHost, VoiceSessionOptions, VoiceStats } from "./voice-session-types.ts";

/**
 * The conversation inside the call's object, a conductor of parts: the media bridge carries audio both ways per
 * frame and follows what the caller heard (media-bridge.ts); the provider link keeps one provider connected under
 * its breaker (provider-link.ts); the switcher moves the conversation to another provider (switcher.ts); the turn
 * watchdog notices a provider that owes a reply (turn-watchdog.ts). What is left here is the conversation itself:
 * the provider's events dispatched, barge-in, DTMF, tool calls, transcripts and the history replayed to a provider.
 *
 * The per-frame paths (`callerAudio`, agent audio) never await, never touch storage and never log.
 *
 * A little over the ~300 lines a part aims at: the wiring of its four parts, and the conversation's events, which
 * share its state (the provider in use, tools in flight, what the caller heard).
 */

const MAX_HISTORY_LINES = 60;
/** The lines the running sentiment is rebuilt from after an eviction (all the object keeps). */
const SENTIMENT_LINES = 2_000;
/** Whispers kept in the instructions of later provider sessions (reconnects, switches), newest last. */
const MAX_GUIDANCE = 10;

export class VoiceSession implements ToolHost {
  private toolsInFlight = 0;
  private closed = false;
  private agentRepliedSinceCallerTurn = true;
  /**
   * The agent reply whose audio has begun but whose line has not come (providers send it with or after the last
   * chunk): a graceful switch waits for it, else the reply is missing from the context the next provider gets.
   */
  private unfinishedReply: string | null = null;
  private lastAgentLineItem: string | null = null;
  /** The session's instructions, with the caller's context once it is known. */
  private instructions: string;
  /** Supervisors' whispers: a new provider session (reconnect, switch) gets them with its instructions. */
  private readonly guidance: string[] = [];
  /**
   * A supervisor has the call (live/supervision.ts): the agent keeps hearing the caller (so it transcribes them and
   * knows what was said) but is not heard — each reply it starts is cut off unheard — and owes no reply.
   */
  private takeover: { since: number; mutedItem: string | null } | null = null;
  private readonly bridge: MediaBridge;
  private readonly watchdog: TurnWatchdog;
  private readonly switcher: Switcher;
  private readonly link: ProviderLink;
  /** The caller's sentiment over the whole conversation, whichever provider heard each turn. */
  private readonly sentiment = new RunningSentiment();
  readonly stats: VoiceStats = {
    callerFrames: 0,
    callerFramesDropped: 0,
    agentChunks: 0,
    bargeIns: 0,
    reconnects: 0,
    providerErrors: 0,
    toolCalls: 0,
    screenFrames: 0,
    screenFramesDropped: 0,
  };

  constructor(
    private readonly host: VoiceSessionHost,
    private readonly options: VoiceSessionOptions,
  ) {
    this.instructions = options.instructions;
    // Rebuilt from the stored transcript, so an object woken after an eviction carries on where it was; no storage.
    for (const line of options.transcript.recent(SENTIMENT_LINES)) if (line.role === "caller") this.sentiment.add(line.text);
    this.bridge = new MediaBridge(
      {
        leg: () => this.host.leg(),
        connectedProvider: () => (this.link.state === "connected" ? this.link.provider : null),
        holdForSwitch: (base64) => this.switcher.hold(base64),
        switching: () => this.switcher.active,
        closed: () => this.closed,
        // The caller spoke and stopped while the agent has been quiet: the provider owes a reply (stall detection).
        callerTurnEnded: () => this.awaitReply(),
        turnCompleted: (turn) => this.host.turnCompleted(turn),
      },
      options.callAudio,
      this.stats,
      options.tap,
    );
    this.link = new ProviderLink(
      options.provider,
      {
        dial: (provider, onEvent) =>
          this.host.connect(provider, onEvent, this.sessionConfig(this.history(), this.resumptionHandleFor(provider))),
        onEvent: (generation, event) => this.onProviderEvent(generation, event),
        failover: () => this.failover(),
        switching: () => this.switcher.active,
        installed: () => this.bridge.providerChanged(),
        reconnected: () => this.bridge.deliverBuffered(),
        lost: () => {
          this.bridge.providerLost();
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
        this.link.lose("no reply within the response timeout");
      },
      hangup: (reason) => void this.host.hangup(reason),
      agentSpeaking: () => this.bridge.agentSpeaking(),
      lastAgentAudioAt: () => this.bridge.lastAgentAudioAt,
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
        busy: () => this.agentSpeaking() || this.unfinishedReply !== null || this.toolsInFlight > 0,
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

  /**
   * Opens the provider session at once (at the webhook, before media flows), so the caller never waits for it; only
   * a caller context still being looked up (bounded) comes first. Caller frames meanwhile are held like any frames
   * that arrive before the provider is ready, and the carrier's answer never waits on either.
   */
  start(): void {
    if (!this.options.callerContext) {
      void this.link.connect();
      return;
    }
    void this.options.callerContext.then((context) => {
      if (context) this.instructions = `${this.instructions}\n\n${context}`;
      if (!this.closed) void this.link.connect();
    });
  }

  // ── caller → provider (per frame) ──────────────────────────────────────────────────────────────────────

  /** A caller frame; `decoded`, when given, is its bytes (read now, not kept). */
  callerAudio(base64: string, decoded?: Uint8Array): void {
    this.bridge.callerAudio(base64, decoded);
  }

  dtmf(digit: string): void {
    // Watchers and the transcript see the digit as the tenant's redaction allows; the provider needs the real one.
    const shown = this.options.redaction.digit(digit);
    this.host.publish({ type: "dtmf", digit: shown, at: Date.now() });
    this.appendTranscript("caller", dtmfText(shown), null);
    this.sendText(dtmfText(digit));
  }

  /**
   * A frame of the web caller's screen, for a connected provider that sees images; false (counted as dropped) when
   * none can take it now. Not held for a reconnect or a switch: the next frame, a second later, shows the screen again.
   */
  sendImage(image: ImageFrame): boolean {
    const provider = this.link.provider;
    if (!provider?.sendImage || this.link.state !== "connected") {
      this.stats.screenFramesDropped++;
      return false;
    }
    provider.sendImage(image);
    this.stats.screenFrames++;
    return true;
  }

  /** Text for the agent from outside the audio (DTMF). */
  sendText(text: string): void {
    if (!this.link.provider || this.link.state !== "connected") return;
    this.link.provider.sendText(text);
    this.awaitReply();
  }

  // ── supervisors (live/supervision.ts) ───────────────────────────────────────────────────────────────────

  /** A supervisor's whisper: guidance for the agent, now and in every later provider session; never a turn. */
  whisper(text: string): void {
    this.guidance.push(text);
    if (this.guidance.length > MAX_GUIDANCE) this.guidance.shift();
    if (this.link.provider && this.link.state === "connected") this.link.provider.guide(text);
    this.systemLine(`Supervisor whispered: ${text}`);
  }

  get takenOver(): boolean {
    return this.takeover !== null;
  }

  /** A supervisor takes the call: the agent stops at once, as on a barge-in, and the caller's leg is cleared. */
  takeOver(): void {
    if (this.takeover) return;
    this.takeover = { since: Date.now(), mutedItem: null };
    // Barge-in semantics when the agent was talking (clear, truncate); a clear regardless, so nothing queued plays.
    if (!this.bargeIn()) this.host.leg()?.clear();
    this.watchdog.replied();
    this.systemLine("Supervisor took over the call");
  }

  /** The agent resumes, told what was said while the supervisor had the call (both sides). */
  release(): void {
    const takeover = this.takeover;
    if (!takeover) return;
    this.takeover = null;
    const said = this.options.transcript
      .recent(MAX_HISTORY_LINES)
      .filter((line) => line.at >= takeover.since)
      .flatMap(conversationItem);
    if (this.link.provider && this.link.state === "connected") this.link.provider.addContext(said);
    this.systemLine("Supervisor released the call");
  }

  /**
   * The supervisor's words to the caller (the takeover's speech-to-text): a `supervisor` line, masked like any other
   * and published to watchers. One heard after the release (the stream delivers the last words a moment late) goes
   * straight into the agent's context, since the release has already handed over the rest.
   */
  supervisorSaid(text: string): void {
    const line = this.options.transcript.append({
      role: "supervisor",
      text: this.options.redaction.text(text),
      provider: this.link.name,
      interrupted: false,
      itemId: null,
      at: Date.now(),
    });
    this.host.publish({
      type: "transcript",
      role: "supervisor",
      text: line.text,
      provider: line.provider,
      interrupted: false,
      at: line.at,
    });
    this.host.transcriptChanged();
    if (!this.takeover && this.link.provider && this.link.state === "connected") this.link.provider.addContext(conversationItem(line));
  }

  /** Agent audio is being relayed to the caller now (a chunk arrived within `withinMs`): not a moment for a commit. */
  relayingAgentAudio(withinMs: number): boolean {
    return Date.now() - this.bridge.lastAgentAudioAt < withinMs;
  }

  /** A carrier echoed one of our marks: the audio before it has played. */
  markPlayed(name: string): void {
    this.bridge.markPlayed(name);
  }

  /** A new caller leg (the carrier reconnected its stream, or the leg's format is now known). */
  legChanged(): void {
    this.bridge.legChanged();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watchdog.close();
    this.link.close();
    this.bridge.close();
  }

  // ── tools ────────────────────────────────────────────────────────────────────────────────────────────────

  async endCall(reason: string): Promise<string> {
    this.watchdog.endCall(reason);
    return JSON.stringify({ ok: true, note: "The call ends once your last words have played." });
  }

  transferToHuman(reason: string): Promise<string> {
    return this.host.transfer(reason);
  }

  business() {
    return this.host.business();
  }

  // ── provider → caller ──────────────────────────────────────────────────────────────────────────────────

  private onProviderEvent(generation: number, event: ProviderEvent): void {
    if (this.closed) return;
    if (this.switcher.eventOfNext(generation, event)) return;
    if (generation !== this.link.generation) return;
    try {
      this.handleProviderEvent(event);
    } catch (error) {
      this.host.log().error("voice.event_handler_failed", { providerEvent: event.type, error });
    }
  }

  private handleProviderEvent(event: ProviderEvent): void {
    switch (event.type) {
      case "agent_audio":
        if (event.itemId !== this.lastAgentLineItem) this.unfinishedReply = event.itemId;
        return this.agentAudio(event.base64, event.itemId);
      case "agent_audio_done":
        this.options.breakers.success(this.link.name);
        void this.switcher.checkFleetHealth();
        return;
      case "caller_speech_started":
        this.agentRepliedSinceCallerTurn = false;
        // A barged-in reply may never get its line (the provider drops it): nothing left to wait for.
        this.unfinishedReply = null;
        if (!this.takeover) this.bargeIn();
        return;
      case "caller_speech_stopped":
        return this.bridge.callerStopped();
      case "transcript":
        if (event.role === "agent") {
          this.lastAgentLineItem = event.itemId ?? null;
          this.unfinishedReply = null;
          // What the agent said during a takeover was never heard: it is not the conversation.
          if (this.takeover) return;
          this.agentActivity();
        } else if (!this.agentRepliedSinceCallerTurn) this.awaitReply();
        this.appendTranscript(event.role, event.text, event.itemId ?? null);
        return;
      case "tool_call":
        this.agentActivity();
        void this.runTool(event.callId, event.name, event.arguments);
        return;
      case "usage":
        metrics.count("llm_tokens_total", { provider: this.link.name, kind: "input" }, event.inputTokens);
        metrics.count("llm_tokens_total", { provider: this.link.name, kind: "output" }, event.outputTokens);
        return;
      case "resumption_handle":
        this.options.resumption.set({ provider: this.link.name, handle: event.handle });
        return;
      case "ending_soon":
        // The provider's session cap is near (Gemini's goAway, OpenAI's fixed lifetime): a fresh session takes over
        // with the conversation.
        this.host.log().info("provider.ending_soon", { provider: this.link.name, timeLeftMs: event.timeLeftMs });
        void this.switchTo(this.link.name, { preserveContext: true, reason: "rollover", immediate: false });
        return;
      case "error":
        this.stats.providerErrors++;
        metrics.count("ai_provider_errors_total", { provider: this.link.name, error_type: boundedCode(event.code) });
        this.host.reportHealth({ provider: this.link.name, kind: "error", at: Date.now() });
        this.host.log().warn("provider.error", { provider: this.link.name, code: event.code, fatal: event.fatal });
        if (event.fatal) this.link.lose(`error ${event.code}`);
        return;
      case "closed":
        return this.link.lose(`closed ${event.code}`);
    }
  }

  private agentAudio(base64: string, itemId: string): void {
    if (this.takeover) return this.muteReply(itemId);
    if (this.bridge.isInterrupted(itemId)) return;
    const leg = this.host.leg();
    const provider = this.link.provider;
    if (!leg || !provider) return;
    const owedSince = this.watchdog.awaitingSince;
    if (owedSince !== null) {
      // The fleet judges the provider by this, so it starts when the provider heard the caller stop, when it says so
      // after this object did: the caller's audio can queue on its way out of a busy isolate, seconds its lateness
      // measure does not see, and counted here they failed a healthy provider fleet-wide (test/bench/FINDINGS.md, item 39).
      const now = Date.now();
      this.host.reportHealth({
        provider: this.link.name,
        kind: "response",
        latencyMs: now - Math.max(owedSince, this.bridge.providerHeardStopAt),
        at: now,
      });
    }
    this.agentActivity();
    this.bridge.playToCaller(base64, itemId, provider, leg);
  }

  /** A reply started during a takeover is cut off unheard, once per reply: the provider keeps none of it. */
  private muteReply(itemId: string): void {
    if (this.takeover!.mutedItem === itemId) return;
    this.takeover!.mutedItem = itemId;
    this.link.provider?.interrupt(itemId, 0);
  }

  /** The caller talks over the agent: stop playback at once, then tell the provider how much was heard. */
  private bargeIn(): boolean {
    const cut = this.bridge.stopPlayback();
    if (!cut) return false;
    const { itemId, heardMs } = cut;
    this.link.provider?.interrupt(itemId, heardMs);
    this.stats.bargeIns++;
    metrics.count("barge_in_total", { provider: this.link.name });
    this.options.transcript.markInterrupted(itemId);
    this.host.publish({ type: "barge_in", itemId, heardMs, at: Date.now() });
    this.host.transcriptChanged();
    return true;
  }

  /** No reply is owed while a supervisor has the call (the agent is silenced on purpose). */
  private awaitReply(): void {
    if (!this.takeover) this.watchdog.awaitReply();
  }

  /** A line of the record about the call (never replayed to a provider, never published to a web caller). */
  private systemLine(text: string): void {
    this.options.transcript.append({ role: "system", text, provider: this.link.name, interrupted: false, itemId: null, at: Date.now() });
    this.host.transcriptChanged();
  }

  private agentActivity(): void {
    this.agentRepliedSinceCallerTurn = true;
    this.watchdog.replied();
  }

  private appendTranscript(role: "caller" | "agent", text: string, itemId: string | null): void {
    if (!text.trim()) return;
    // Masked before it is stored or published (per line, off the audio path): /live watchers see what is stored.
    const line = this.options.transcript.append({
      role,
      text: this.options.redaction.text(text),
      provider: this.link.name,
      interrupted: itemId !== null && this.bridge.isInterrupted(itemId),
      itemId,
      at: Date.now(),
    });
    this.host.publish({ type: "transcript", role, text: line.text, provider: line.provider, interrupted: line.interrupted, at: line.at });
    this.host.transcriptChanged();
    // Once per caller turn, from the provider's final transcript, never per frame.
    if (role === "caller") {
      const turn = this.sentiment.add(line.text);
      const { current: conversation, turns } = this.sentiment;
      this.host.publish({ type: "sentiment", turn, conversation, turns, provider: line.provider, at: line.at });
      this.host.conversationSignal({ kind: "caller_turn", text: line.text, score: turn.score });
    }
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
    const tool = this.options.tools.definitions().some((definition) => definition.name === name) ? name : "unknown";
    metrics.count("tool_calls_total", { tool, outcome: outcome.replayed ? "replayed" : outcome.status });
    // A call id delivered again is not a new outcome.
    if (!outcome.replayed) this.host.conversationSignal({ kind: "tool_outcome", failed: outcome.status === "failed" });
    if (this.closed || !this.link.provider) return;
    // A provider that took over meanwhile never saw the call: it is told the result as context instead.
    if (this.link.generation === askedBy) this.link.provider.sendToolResult(callId, name, outcome.result);
    else this.link.provider.sendText(`[Tool ${name} returned: ${outcome.result}]`);
    this.awaitReply();
  }

  // ── provider lifecycle ─────────────────────────────────────────────────────────────────────────────────

  private resumptionHandleFor(provider: ProviderName): string | undefined {
    const stored = this.options.resumption.get();
    return stored?.provider === provider ? stored.handle : undefined;
  }

  private sessionConfig(history: ConversationItem[], resumptionHandle: string | undefined): ProviderSessionConfig {
    const guidance = this.guidance.map((text) => `\n- ${text}`).join("");
    return {
      instructions:
        this.instructions +
        this.sentimentNote() +
        (guidance ? `\n\nGuidance from your human supervisor (follow it; never read it aloud):${guidance}` : ""),
      tools: this.options.tools.definitions(),
      ...(this.options.voice && { voice: this.options.voice }),
      history,
      callAudio: this.options.callAudio,
      correlationId: this.options.correlationId,
      resumptionHandle,
      log: this.host.log(),
    };
  }

  /** The caller's mood so far, for a provider that takes over the conversation (a switch, a reconnect). */
  private sentimentNote(): string {
    const { current, turns } = this.sentiment;
    if (turns === 0) return "";
    return `\n\nThe caller's mood so far, over ${turns} turns: ${current.label} (sentiment ${current.score} on a scale of -1 to 1).`;
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
    this.bridge.deliverBuffered(heldAudio);
  }

  private agentSpeaking(): boolean {
    return this.bridge.agentSpeaking();
  }

  /** The conversation so far, oldest first: transcript lines and finished tool calls. */
  private history(): ConversationItem[] {
    const lines = this.options.transcript.recent(MAX_HISTORY_LINES);
    const tools = this.options.tools.history();
    const items: Array<{ at: number; item: ConversationItem }> = [
      ...lines.flatMap((line) => conversationItem(line).map((item) => ({ at: line.at, item }))),
      ...tools,
    ];
    return items.sort((a, b) => a.at - b.at).map((entry) => entry.item);
  }
}

/**
 * A transcript line as the agent gets it: none for a `system` line (the record about the call, never replayed). A
 * supervisor spoke on the agent's side of the call, so their words are the agent's side of the conversation, marked
 * as theirs: the agent carries on from what was promised without taking it for its own words.
 */
function conversationItem(line: Pick<TranscriptLine, "role" | "text">): ConversationItem[] {
  if (line.role === "system") return [];
  if (line.role === "supervisor")
    return [{ kind: "message", role: "agent", text: `(Your human supervisor, speaking for you:) ${line.text}` }];
  return [{ kind: "message", role: line.role, text: line.text }];
}

/** A provider's error code as a metric label: its own word when it is one, "other" for anything else (bounded). */
const boundedCode = (code: string): string => (/^[a-z][a-z0-9_.]{0,39}$/.test(code) ? code : "other");
