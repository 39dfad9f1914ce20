import { DurableObject } from "cloudflare:workers";
import { BusinessEngine } from "../workers/business/engine.ts";
import type { CarrierEvent, MediaFrame, TurnAwayStep } from "../workers/carriers/carrier.ts";
import { mediaCredential } from "../workers/carriers/media-credential.ts";
import { MEDIA_CARRIER_HEADER, MEDIA_SESSION_HEADER, MEDIA_UPGRADE_PATH } from "../workers/carriers/media-upgrade.ts";
import { carrierNamed } from "../workers/carriers/registry.ts";
import { sentimentOf } from "../workers/shared/analysis/lexicon.ts";
import { standingsOf } from "../workers/shared/db/principal-standing.ts";
import type { PromptRef } from "../workers/shared/db/prompts.ts";
import { PROVIDER_NAMES, type RecordingMode } from "../workers/shared/db/schema.ts";
import { SharedD1Batch } from "../workers/shared/db/shared-batch.ts";
import { tenantScopeFor } from "../workers/shared/db/tenant-scope.ts";
import { reasonOf } from "../workers/shared/errors.ts";
import type { ConversationSignal } from "../workers/shared/escalation.ts";
import { createLogger, type Logger } from "../workers/shared/logger.ts";
import { metrics } from "../workers/shared/observability/metrics.ts";
import { seriesKey } from "../workers/shared/observability/recorder.ts";
import { providerConfigured } from "../workers/shared/provider-endpoints.ts";
import { healthSnapshot, providerForNewSession } from "../workers/shared/provider-health-client.ts";
import { type ProviderName, parseSettings, requireSettings } from "../workers/shared/settings.ts";
import type { TenantSettings } from "../workers/shared/tenant-settings.ts";
import { stagesOf } from "../workers/shared/turn-timings.ts";
import { isWebSocketUpgrade } from "../workers/shared/websockets.ts";
import { yieldToSockets } from "../workers/shared/yield-to-sockets.ts";
import { type Admission, AdmissionSlot, CONCURRENCY_LIMIT, RELEASE_RETRY_MS } from "./admission/admission-slot.ts";
import { AlarmSchedule } from "./alarm-schedule.ts";
import { AnsweringMachine, agentBarred, agentHeld } from "./call/answering-machine.ts";
import {
  type ControlCommand,
  type ControlResult,
  controlCall,
  type PlaceCallInput,
  type PlaceCallResult,
  placeCall,
  reconcileCall,
} from "./call/call-commands.ts";
import { CallLedger } from "./call/call-ledger.ts";
import { CALL_STORE_TABLES } from "./call/call-store.ts";
import { type EventOutcome, recordCarrierEvent } from "./call/carrier-events.ts";
import { CarrierLink } from "./call/carrier-link.ts";
import { ConsentFirst } from "./call/consent-first.ts";
import { ConversationWriter } from "./call/conversation-writer.ts";
import { OVERLOADED, outcomesWithheldBy, shedsAt } from "./call/load-shedding.ts";
import { type DrainResult, DrainRetry, OUTBOX_BOUNDS, type OutboxKind, type PendingSync } from "./call/outbox-backlog.ts";
import { phoneChannel } from "./call/phone-channel.ts";
import { Redaction } from "./call/redaction.ts";
import { isTerminal, type TransitionSource } from "./call/state-machine.ts";
import { TRANSCRIPT_TABLES, TranscriptLog } from "./call/transcript-log.ts";
import { TURN_AWAY_DEADLINE_KEY, TURN_AWAY_HANGUP_AFTER_MS, turnAwayStepAfter, turnedAway } from "./call/turn-away.ts";
import { LiveSockets } from "./live/live-sockets.ts";
import { ScreenShare } from "./live/screen-share.ts";
import { Supervision } from "./live/supervision.ts";
import type { SpeechToTextEndpoint } from "./live/supervisor-stt.ts";
import { encodeBase64 } from "./media/audio/pcm16.ts";
import { isolateLatenessMs } from "./media/isolate-lateness.ts";
import { MediaSockets } from "./media/media-sockets.ts";
import { HealthReporter } from "./provider-health/reporter.ts";
import { CallRecording } from "./recording/call-recording.ts";
import { RememberedKv } from "./remembered-kv.ts";
import type { CallerChannel, SessionIdentity } from "./session/caller-channel.ts";
import { ESCALATION_TABLES, Escalations } from "./session/escalations.ts";
import { PostCallAnalysis } from "./session/post-call-analysis.ts";
import { SessionMetrics } from "./session/session-metrics.ts";
import { SWITCH_TABLES, SwitchLog } from "./session/switch-log.ts";
import { webChannel } from "./session/web-channel.ts";
import { WebConsent } from "./session/web-consent.ts";
import { CALLER_GRACE_MS, instructionsWithContext, type OpenWebSessionInput, WebSessionStore } from "./session/web-session.ts";
import { openTables } from "./session-tables.ts";
import { BUSINESS_TOOLS } from "./voice/business-tools.ts";
import { callerContext } from "./voice/caller-context.ts";
import { BREAKER_TABLES, CircuitBreakers } from "./voice/circuit-breaker.ts";
import { DRAFT_TABLES, DraftStore } from "./voice/drafts.ts";
import { connectProvider } from "./voice/providers/registry.ts";
import { BUILTIN_TOOLS, TOOL_CALL_TABLES, ToolRunner, toolIndex } from "./voice/tools.ts";
import { VoiceSession } from "./voice/voice-session.ts";
import type { SwitchOptions, SwitchResult, VoiceSessionHost } from "./voice/voice-session-types.ts";

export type { ControlCommand, ControlResult, PlaceCallInput, PlaceCallResult } from "./call/call-commands.ts";

export interface OpenCallInput {
  sessionId: string;
  tenantId: string;
  correlationId: string;
  event: CarrierEvent;
  route: {
    provider: ProviderName | null;
    instructions: string | null;
    prompt: PromptRef | null;
    codec: "PCMU" | "PCMA";
    /** The number's own recording setting (null: the tenant's), read with the route. */
    recording: RecordingMode | null;
  };
}

export type OpenCallResult =
  | { kind: "stream"; sessionId: string; consent: string | null }
  | { kind: "ended" }
  | { kind: "duplicate" }
  | { kind: "busy" };

export type { EventOutcome } from "./call/carrier-events.ts";

/** A session's log lines before its record exists (the ledger's logger names the call once it does). */
const newSessionLog = (input: { correlationId: string; tenantId: string; sessionId: string }) =>
  createLogger({ correlationId: input.correlationId, tenantId: input.tenantId, sessionId: input.sessionId });

/** `circuit_breaker_state`'s values. */
const BREAKER_LEVEL = { closed: 0, half_open: 1, open: 2 } as const;

const DEFAULT_INSTRUCTIONS = "You are a helpful, concise voice assistant on a phone call.";
/** Every call's tools, indexed once per isolate (a call's own objects are what every major GC marks). */
const CALL_TOOLS = toolIndex([...BUILTIN_TOOLS, ...BUSINESS_TOOLS]);
/**
 * How often the principals of open /live sockets are rechecked against D1 (one query for all of them): the bound
 * on how long a revoked or demoted watcher stays connected. The object asks rather than being told, so nothing
 * has to keep a registry of who watches which session, and a change made any way at all is seen.
 */
const LIVE_RECHECK_MS = 5_000;
/**
 * How long a call its carrier reported ended waits for its media stream's `stop` before it is torn down. The status
 * callback and the stream are two connections with no order between them: while the isolate is behind, the callback
 * can be read before the stream's last frames, the caller's last words, which would then never reach the provider.
 */
const STREAM_STOP_GRACE_MS = 500;

/**
 * One object per session (a phone call or a web session). It is the single writer of its call's state: carrier
 * webhooks arrive here through the Worker (already authenticated), so concurrent and out-of-order callbacks are
 * serialised, and the ledger stores every change here first (hot) and drains it to D1 (durable). It holds the
 * caller's leg (the carrier's media stream or a browser on /live), the conversation with the voice AI provider
 * (voice/voice-session.ts), and the supervisors' live sockets.
 *
 * Longer than the ~300 lines a part aims at: it is the object's whole RPC and socket surface (calls, web sessions,
 * switching, carrier events, media upgrades, the alarm), and each entry point only delegates to a part — the
 * ledger, the carrier link and events, the media and live sockets, the caller channels, the voice session.
 */
export class CallSession extends DurableObject<Env> {
  /** The object's KV storage, reads remembered (remembered-kv.ts); every part is given this one. */
  private readonly kv: RememberedKv;
  private readonly alarmSchedule: AlarmSchedule;
  private readonly ledger: CallLedger;
  private readonly media: MediaSockets;
  private readonly live: LiveSockets;
  private readonly supervision: Supervision;
  private readonly screen: ScreenShare;
  private readonly transcript: TranscriptLog;
  /** The tenant's PII redaction for this session's transcript and DTMF digits (masks until it is known). */
  private readonly redaction: Redaction;
  private readonly conversation: ConversationWriter;
  /** The parts' D1 writes: at once, but the end's ledger and transcript drains as one batch. */
  private readonly d1Writes: SharedD1Batch;
  private readonly tools: ToolRunner;
  /** The voice agent's drafts awaiting the caller's yes (drafts.ts). */
  private readonly drafts: DraftStore;
  private readonly breakers: CircuitBreakers;
  private readonly switches: SwitchLog;
  private readonly switchRetry = new DrainRetry();
  private readonly sessionMetrics: SessionMetrics;
  private readonly webRetry = new DrainRetry();
  private readonly health: HealthReporter;
  private readonly analysis: PostCallAnalysis;
  private readonly escalations: Escalations;
  private readonly escalationRetry = new DrainRetry();
  /** The session's two-channel recording when its tenant records (README "Recordings"). */
  private readonly recording: CallRecording;
  /** The conversation with the voice AI provider; rebuilt lazily after an eviction (context from storage). */
  private voice: VoiceSession | null = null;
  /** Set when the session is a web session (the caller is a browser on /live) rather than a phone call. */
  private readonly web: WebSessionStore;
  /** A recorded web session's caller is heard once its browser has said the consent (web-consent.ts). */
  private readonly webConsent: WebConsent;
  private readonly phone: CallerChannel;
  private readonly browser: CallerChannel;
  /** A call its carrier ended, waiting for its media stream's `stop` (STREAM_STOP_GRACE_MS) to be torn down. */
  private teardownTimer: ReturnType<typeof setTimeout> | null = null;
  /** The next recheck of the live sockets while a conversation keeps the object in memory (else the alarm). */
  private liveRecheck: ReturnType<typeof setTimeout> | null = null;
  /** The session's slot under its tenant's concurrency limit. */
  private readonly slot: AdmissionSlot;
  /** An outbound call's answering-machine verdict: the agent, a hangup, or a voicemail. */
  private readonly machine: AnsweringMachine;
  /** A recorded call answered by command: its consent message is said before the stream starts. */
  private readonly consentFirst: ConsentFirst;
  /** This instance found no session in its storage: whatever session it holds began here, not in a predecessor. */
  private readonly startedEmpty: boolean;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const settings = parseSettings(env).values;
    const { empty } = openTables(ctx.storage.sql, [
      CALL_STORE_TABLES,
      TRANSCRIPT_TABLES,
      TOOL_CALL_TABLES,
      DRAFT_TABLES,
      SWITCH_TABLES,
      BREAKER_TABLES,
      ESCALATION_TABLES,
    ]);
    this.kv = new RememberedKv(ctx.storage.kv);
    this.web = new WebSessionStore(this.kv);
    this.webConsent = new WebConsent(this.kv);
    this.redaction = new Redaction(this.kv);
    this.slot = new AdmissionSlot(this.kv, env);
    this.transcript = new TranscriptLog(ctx.storage.sql, empty);
    this.d1Writes = new SharedD1Batch(env);
    this.conversation = new ConversationWriter({
      env,
      d1Writes: this.d1Writes,
      storage: this.kv,
      transcript: this.transcript,
      relayingAgentAudio: (withinMs) => this.voice?.relayingAgentAudio(withinMs) ?? false,
      session: () => this.identity(),
      wakeIn: (delayMs) => this.alarmSchedule.wakeBy(Date.now() + delayMs),
    });
    this.tools = new ToolRunner(ctx.storage.sql, CALL_TOOLS, empty);
    this.drafts = new DraftStore(ctx.storage.sql);
    this.switches = new SwitchLog(ctx.storage.sql, () => this.log(), empty);
    this.health = new HealthReporter(env, (task) => ctx.waitUntil(task), { behindMs: outcomesWithheldBy });
    this.breakers = new CircuitBreakers(
      ctx.storage.sql,
      {
        failureThreshold: settings.PROVIDER_BREAKER_FAILURES,
        openMs: settings.PROVIDER_BREAKER_OPEN_SECONDS * 1000,
        halfOpenTrials: settings.PROVIDER_BREAKER_HALF_OPEN_TRIALS,
        successThreshold: settings.PROVIDER_BREAKER_SUCCESSES,
      },
      () => this.log(),
      empty,
    );
    this.alarmSchedule = new AlarmSchedule(ctx.storage);
    this.recording = new CallRecording({
      env,
      session: () => this.identity(),
      tenantSettings: () => this.tenantSettings(),
      numberSetting: () => this.ledger.record?.recording ?? null,
      predecessorPossible: () => !this.startedEmpty,
      waitUntil: (task) => ctx.waitUntil(task),
      log: () => this.log(),
    });
    this.analysis = new PostCallAnalysis({
      env,
      storage: this.kv,
      session: () => this.identity(),
      transcriptPending: () => this.transcript.pendingCount(),
      held: () => ({ lines: this.transcript.conversation(), escalations: this.escalations.reasons() }),
      wakeBy: (at) => this.alarmSchedule.wakeBy(at),
      log: () => this.log(),
    });
    this.escalations = new Escalations(
      {
        sql: ctx.storage.sql,
        env,
        rules: () => this.redaction.settings?.escalation ?? null,
        session: () => this.identity(),
        history: () => this.storedConversation(),
        publish: (event) => this.live.broadcastToSupervisors(event),
        transfer: (to) => this.transferForEscalation(to),
        retry: (result) => this.retryIfUnfinished(this.escalationRetry, result),
        waitUntil: (task) => ctx.waitUntil(task),
        log: () => this.log(),
      },
      empty,
    );
    this.ledger = new CallLedger(ctx, env, this.alarmSchedule, (source) => this.callEnded(source), {
      empty,
      d1Writes: this.d1Writes,
      // Every applied state move is broadcast to the session's live sockets.
      onTransition: (change) => this.live.broadcast({ type: "call_state", status: change.to, reason: change.reason, at: change.at }),
    });
    this.media = new MediaSockets({
      onFrame: (frame) => this.onMediaFrame(frame),
      onMark: (name) => this.voice?.markPlayed(name),
      onAudio: (payload, decoded) => {
        (this.voice ?? this.ensureVoice())?.callerAudio(payload, decoded);
        this.supervision.callerAudio(payload);
        this.sessionMetrics.tick();
      },
      // A stream gone without its `stop` has delivered all it will: a call ended meanwhile need not wait longer.
      onClosed: () => {
        if (this.teardownTimer && this.media.openCount() === 0) this.tearDown();
      },
      log: () => this.log(),
    });
    this.live = new LiveSockets(ctx, {
      hello: (role) => {
        const session = this.identity();
        if (!session) return null;
        const provider = this.voice?.currentProvider ?? session.provider;
        const callStatus = this.ledger.record?.status ?? null;
        return {
          type: "hello",
          sessionId: session.sessionId,
          role,
          channel: session.channel,
          provider,
          callStatus,
          capabilities: ScreenShare.capabilities(session.channel, provider),
          consent: this.recording.consentMessage,
          serverTime: Date.now(),
        };
      },
      tenantId: () => this.identity()?.tenantId ?? null,
      onCallerJoined: () => this.webConsent.callerJoined(this.recording.consentMessage),
      onConsentHeard: () => this.webConsent.heard(),
      onCallerAudio: (pcm16) => this.onBrowserAudio(pcm16),
      onScreenFrame: (image) => {
        if (this.web.record?.status === "active") this.screen.frame(image);
      },
      onSupervisorCommand: (ws, by, command) => this.supervision.command(ws, by, command),
      holdsTakeover: (ws) => this.supervision.holds(ws),
      onSupervisorAudio: (pcm16) => this.supervision.supervisorAudio(pcm16),
      onSocketGone: (ws) => this.supervision.socketGone(ws),
      standings: (tenantId, principals) => standingsOf(env, tenantId, principals),
      log: () => this.log(),
    });
    this.screen = new ScreenShare({
      voice: () => this.voice ?? this.ensureVoice(),
      toCaller: (event) => this.live.sendToCaller(event),
      broadcast: (event) => this.live.broadcast(event),
    });
    this.supervision = new Supervision({
      voice: () => this.voice ?? this.ensureVoice(),
      leg: () => this.channel()?.leg() ?? null,
      sendTo: (ws, data) => this.live.sendTo(ws, data),
      publish: (event) => this.live.broadcastToSupervisors(event),
      speechToText: () => this.speechToText(),
      tap: this.recording,
      log: () => this.log(),
    });
    const waitUntil = (task: Promise<unknown>) => ctx.waitUntil(task);
    this.machine = new AnsweringMachine({
      ledger: this.ledger,
      storage: this.kv,
      wakeBy: (at) => this.alarmSchedule.wakeBy(at),
      carrier: this.carrier,
      hangUp: () => controlCall(this.ledger, this.carrier, { action: "hangup" }, this.ledger.record!.correlationId),
      // The voice session made while the verdict was awaited (its provider not dialled) starts now.
      startAgent: () => (this.voice ? this.voice.start() : this.ensureVoice()),
      dropAgent: () => {
        this.voice?.close();
        this.voice = null;
      },
    });
    this.consentFirst = new ConsentFirst({
      ledger: this.ledger,
      storage: this.kv,
      wakeBy: (at) => this.alarmSchedule.wakeBy(at),
      carrier: this.carrier,
    });
    this.phone = phoneChannel({ env, ledger: this.ledger, media: this.media, carrier: this.carrier, waitUntil });
    this.browser = webChannel({ env, web: this.web, live: this.live, end: (reason) => this.endWebSession(reason), waitUntil });
    this.sessionMetrics = new SessionMetrics({
      env,
      sessionId: () => this.identity()?.sessionId ?? null,
      gauges: () => this.metricGauges(),
      stats: () => this.voice?.stats ?? null,
      waitUntil,
    });
    this.startedEmpty = this.ledger.record === null && this.web.record === null;
    // Woken (after an eviction or a deploy) with browsers still connected: their rechecks resume.
    if (this.live.anyOpen()) waitUntil(this.scheduleLiveRecheck());
  }

  /**
   * The session's logger, whichever channel carries it: every line names the session, its tenant, its provider and
   * the correlation id of the request that created it (a web session has no ledger record to take them from).
   */
  private log(): Logger {
    const web = this.web.record;
    if (this.ledger.record || !web) return this.ledger.log();
    return createLogger({ correlationId: web.correlationId, tenantId: web.tenantId, sessionId: web.sessionId, provider: web.provider });
  }

  private carrier = () => new CarrierLink(this.env, this.ledger.record!, this.ledger.log());

  /** The first webhook of an inbound call (its carrier's "a call arrived"); retries get the same answer. */
  async openCall(input: OpenCallInput): Promise<OpenCallResult> {
    // A retry finds the call's record, and with it the decision already made: it takes no second slot.
    if (this.ledger.record) return this.connectCall(input.event, input.correlationId) as Promise<OpenCallResult>;
    // The object was just made (its database opened on the spot); the admission and fleet lookups chain more in-process
    // calls onto that, so the other calls' frames go through first — and how long they took says whether to go on.
    // A shed call takes no slot and asks the fleet nothing: its record is the refusal.
    const [provider, admission] = (await this.shed(input))
      ? [null, "overloaded" as const]
      : await Promise.all([
          // The number's preferred provider if the fleet says it is usable, else the best healthy one (cached per isolate).
          providerForNewSession(this.env, input.route.provider),
          this.takeSlot(input),
        ]);
    if (!this.ledger.record) {
      const { event } = input;
      this.ledger.create(
        {
          sessionId: input.sessionId,
          tenantId: input.tenantId,
          callId: crypto.randomUUID(),
          carrier: event.carrier,
          carrierCallId: event.carrierCallId,
          direction: "inbound",
          from: event.from ?? "unknown",
          to: event.to ?? "unknown",
          provider: provider ?? input.route.provider ?? "local",
          instructions: input.route.instructions,
          prompt: input.route.prompt,
          codec: input.route.codec,
          recording: input.route.recording,
          correlationId: input.correlationId,
          answerCommanded: false,
        },
        "call.opened",
      );
      this.ledger.log(input.correlationId).info("call.opened", { carrier: event.carrier, direction: "inbound" });
      this.admitCall(admission);
    }
    return this.connectCall(input.event, input.correlationId) as Promise<OpenCallResult>;
  }

  /** Whether a new session is shed, its isolate too far behind to carry it (load-shedding.ts). Yields to the sockets. */
  private async shed(input: Parameters<typeof newSessionLog>[0]): Promise<boolean> {
    const latenessMs = await isolateLatenessMs();
    if (!shedsAt(this.env, latenessMs)) return false;
    newSessionLog(input).warn("admission.shed", { latenessMs });
    return true;
  }

  /**
   * The session's slot under its tenant's limit. The slot comes with the tenant's settings, which become the call's
   * copy (masking, escalation, recording) so that nothing on the answering path waits for a D1 read of them.
   */
  private async takeSlot(input: Parameters<typeof newSessionLog>[0]): Promise<Admission> {
    const admission = await this.slot.acquire(input.tenantId, input.sessionId, newSessionLog(input));
    this.redaction.adopt(this.slot.settings);
    return admission;
  }

  /**
   * An inbound call past its tenant's limit, or shed while its isolate is overloaded, is refused on its record (failed,
   * `concurrency_limit` or `overloaded`, so it is counted) and turned away with the busy message. One that could not
   * be checked is let through: a caller must not hear "busy" because the platform's own admission object is away; its
   * record says it was not checked.
   */
  private admitCall(admission: Admission | "overloaded"): void {
    if (admission === "refused") this.ledger.transition("failed", "system", "admission.refused", CONCURRENCY_LIMIT);
    else if (admission === "overloaded") this.ledger.transition("failed", "system", "admission.shed", OVERLOADED);
    else if (admission === "unavailable") {
      this.ledger.note("system", "admission.unchecked", { from: this.ledger.record!.status, to: null, outcome: "applied" });
    }
  }

  /** A carrier asking for the media instructions of a call this object owns (retries, answered outbound calls). */
  async connectCall(event: CarrierEvent, correlationId: string): Promise<OpenCallResult | { kind: "unknown" }> {
    const record = this.ledger.record;
    if (!record) return { kind: "unknown" };
    // The object's storage is the durable record at this moment (the output gate holds this answer until it is
    // committed); D1 catches up in the background, so the carrier's TwiML never waits on it.
    const outcome = recordCarrierEvent(this.ledger, event, correlationId, this.redaction);
    // A repeat once the carrier has streamed is a replay (a carrier retries only an answer it never got): it learns
    // nothing, the stream's credential included.
    if (outcome === "duplicate" && record.stream.state !== "none") return { kind: "duplicate" };
    this.ctx.waitUntil(this.ledger.flush());
    if (turnedAway(record)) {
      if (carrierNamed(record.carrier).answersByCommand && !record.answerCommanded) this.ctx.waitUntil(this.turnAway("arrived"));
      return { kind: "busy" };
    }
    if (isTerminal(record.status)) return { kind: "ended" };
    // The provider session opens now, while the carrier is still setting up the media stream: a turn later, not
    // chained onto the webhook's own calls (yield-to-sockets.ts); a frame that comes first opens it itself.
    this.ctx.waitUntil(
      yieldToSockets().then(() => {
        this.ensureVoice();
      }),
    );
    // The tenant's recording setting, read once for the conversation (bounded): a recorded call's caller hears the
    // consent message before the stream, so before the agent — in the answer's TwiML, or said before a commanded
    // answer's stream starts.
    await this.recording.learn();
    const consent = this.recording.consentMessage;
    if (carrierNamed(record.carrier).answersByCommand && !record.answerCommanded) this.ctx.waitUntil(this.answerByCommand(consent));
    return { kind: "stream", sessionId: record.sessionId, consent };
  }

  async applyCarrierEvent(event: CarrierEvent, correlationId: string): Promise<EventOutcome> {
    const endedBefore = this.ledger.record?.endedAt ?? null;
    const outcome = recordCarrierEvent(this.ledger, event, correlationId, this.redaction);
    if (outcome === "unknown_call" || outcome === "duplicate") return outcome;
    this.sessionMetrics.tick();
    const step = turnAwayStepAfter(this.ledger.record!, event);
    if (step) this.ctx.waitUntil(this.turnAway(step));
    if (this.ledger.record!.amd) this.ctx.waitUntil(this.machine.onSignal(event.signal).then(() => this.ledger.flush()));
    if (this.ledger.record!.consent === "speaking")
      this.ctx.waitUntil(this.consentFirst.onSignal(event.signal).then(() => this.ledger.flush()));
    // After the machine's verdict (taken before its first await): a person it let through hears the consent now.
    if (this.consentAtAnswerDue()) this.ctx.waitUntil(this.sayConsentAtAnswer());
    // The event that ended the call reaches D1 with the end's drain (afterEnd), in the transcript's batch: its answer
    // waits for the object's commit, the durable record, not for D1.
    if (endedBefore === null && this.ledger.record!.endedAt !== null) return outcome;
    await this.ledger.flush();
    return outcome;
  }

  /**
   * One step of turning a call away at its carrier; a failed step is logged. A call answered by command is hung up
   * by the alarm at a deadline if the carrier's later webhooks never come.
   */
  private async turnAway(step: TurnAwayStep): Promise<void> {
    try {
      await this.carrier().turnAway(step);
      if (step === "arrived") {
        this.ledger.record!.answerCommanded = true;
        this.ledger.save();
        const deadline = Date.now() + TURN_AWAY_HANGUP_AFTER_MS;
        this.kv.put(TURN_AWAY_DEADLINE_KEY, deadline);
        await this.alarmSchedule.wakeBy(deadline);
      } else if (step === "spoken") {
        this.kv.delete(TURN_AWAY_DEADLINE_KEY);
      }
    } catch (error) {
      this.carrier().logFailure(`turn_away_${step}`, error);
    }
  }

  /** The turned-away call's hangup, if its deadline has passed without one (retried while the carrier fails). */
  private async hangUpTurnedAwayCall(): Promise<void> {
    const due = this.kv.get<number>(TURN_AWAY_DEADLINE_KEY);
    if (due === undefined) return;
    if (Date.now() < due) {
      await this.alarmSchedule.wakeBy(due);
      return;
    }
    await this.turnAway("spoken");
    if (this.kv.get(TURN_AWAY_DEADLINE_KEY) !== undefined) await this.alarmSchedule.wakeBy(Date.now() + TURN_AWAY_HANGUP_AFTER_MS);
  }

  private async answerByCommand(consent: string | null): Promise<void> {
    try {
      if (consent !== null) return await this.consentFirst.answer(consent);
      await this.carrier().answer();
      this.ledger.record!.answerCommanded = true;
      this.ledger.save();
    } catch (error) {
      this.carrier().logFailure("answer", error);
      this.ledger.transition("failed", "system", "carrier.answer_failed", reasonOf(error));
      await this.ledger.flush();
    }
  }

  /**
   * An outbound call recorded with a consent message, dialled without its stream, that its callee has answered: the
   * message is said once the answering machine's verdict (if asked for) lets the agent through, never to a machine —
   * it would be left on its voicemail, and talking over the greeting would spoil the detection listening to it.
   */
  private consentAtAnswerDue(): boolean {
    const record = this.ledger.record!;
    return (
      record.consentAtAnswer === true &&
      record.consent === undefined &&
      record.answeredAt !== null &&
      !isTerminal(record.status) &&
      carrierNamed(record.carrier).answersByCommand &&
      (!record.amd || record.amd.outcome === "agent")
    );
  }

  private async sayConsentAtAnswer(): Promise<void> {
    await this.consentFirst.say(async () => {
      await this.recording.learn();
      return this.recording.consentMessage;
    });
    await this.ledger.flush();
  }

  async placeCall(input: PlaceCallInput): Promise<PlaceCallResult> {
    if (!this.ledger.record) {
      // Shed, refused or unchecked, nothing is recorded or dialled: the API answers 503 or 429 and the caller may retry.
      if (await this.shed(input)) return { ok: false, reason: OVERLOADED, retryable: true, admission: "overloaded" };
      const admission = await this.takeSlot(input);
      if (admission !== "admitted") return { ok: false, reason: admission, retryable: admission === "unavailable", admission };
    }
    const result = await placeCall(this.ledger, this.carrier, input, async () => {
      // The tenant's (or the number's) recording setting, read once for the call (bounded), before the dial.
      await this.recording.learn();
      return this.recording.consentMessage !== null;
    });
    // Dialled: the provider session opens while the callee's phone rings.
    if (result.ok) this.ensureVoice();
    return result;
  }

  control(command: ControlCommand, correlationId: string): Promise<ControlResult> {
    return controlCall(this.ledger, this.carrier, command, correlationId);
  }

  /** The cron settling a stuck call: one it finds ended also gives its slot back before the cron moves on. */
  async reconcile(): Promise<"terminal" | "live" | "finalized" | "unknown"> {
    const outcome = await reconcileCall(this.ledger, this.carrier);
    if (outcome === "terminal" || outcome === "finalized") await this.releaseSlot();
    return outcome;
  }

  /** Whether the session still runs: the tenant's admission object asks holders whose lease ran out. */
  async admissionState(): Promise<"live" | "ended"> {
    const session = this.identity();
    return session && !session.ended ? "live" : "ended";
  }

  /**
   * A privacy erasure (workers/privacy/erasure-sweep.ts) deleting everything the object holds: the call's record, its
   * transcript lines, its outboxes. Refused (`busy`) while the session runs or anything still waits for D1, since a
   * drain after the sweep would bring rows back; the sweep then tries again on its next run.
   */
  async forget(): Promise<"forgotten" | "busy"> {
    const session = this.identity();
    if ((session && !session.ended) || Object.values(this.outboxCounts()).some((count) => count > 0)) return "busy";
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.kv.forgetAll();
    return "forgotten";
  }

  /** Gives the session's slot back, retried from the alarm while the admission object cannot be reached. */
  private async releaseSlot(): Promise<void> {
    if (!(await this.slot.release(this.log()))) await this.alarmSchedule.wakeBy(Date.now() + RELEASE_RETRY_MS);
  }

  override async alarm(): Promise<void> {
    if (this.live.anyOpen()) await this.recheckLiveSockets();
    await this.hangUpTurnedAwayCall();
    await this.machine.onAlarm();
    // A verdict that never came lets the agent through: a person hears the consent first.
    if (this.ledger.record && this.consentAtAnswerDue()) await this.sayConsentAtAnswer();
    await this.consentFirst.onAlarm();
    await this.ledger.flush();
    await this.conversation.flush();
    if (this.ledger.record && isTerminal(this.ledger.record.status)) this.forgetSynced();
    await this.flushSwitches();
    await this.retryIfUnfinished(this.escalationRetry, await this.escalations.flush());
    if (this.identity()?.ended) {
      this.ctx.waitUntil(this.sessionMetrics.ended());
      await this.releaseSlot();
    }
    const web = this.web.record;
    if (web?.status === "ended") await this.syncWebRecord();
    await this.analysis.runIfDue();
    if (web?.status !== "active" || this.live.hasCaller()) return;
    // Nobody has joined yet: the session (and its billed provider session) waits only so long for a caller.
    const [due, reason] =
      this.web.callerLeftAt === null
        ? [web.createdAt + parseSettings(this.env).values.WEB_SESSION_JOIN_TIMEOUT_SECONDS * 1000, "no_caller"]
        : [this.web.callerLeftAt + CALLER_GRACE_MS, "caller_left"];
    if (Date.now() >= due) await this.endWebSession(reason);
    else await this.alarmSchedule.wakeBy(due);
  }

  /** WebSocket upgrades, forwarded by the Worker after its checks: browsers on /live and carrier media streams. */
  override async fetch(request: Request): Promise<Response> {
    // Browser sockets of /api/v1/sessions/{id}/live, already checked by the Worker; the rest are carrier media upgrades.
    if (new URL(request.url).pathname === "/live") {
      const response = this.live.accept(request);
      if (response.status === 101) await this.scheduleLiveRecheck();
      return response;
    }
    const record = this.ledger.record;
    if (new URL(request.url).pathname !== MEDIA_UPGRADE_PATH || !isWebSocketUpgrade(request.headers)) {
      return new Response("Expected a WebSocket upgrade", { status: 426 });
    }
    if (
      !record ||
      record.sessionId !== request.headers.get(MEDIA_SESSION_HEADER) ||
      record.carrier !== request.headers.get(MEDIA_CARRIER_HEADER)
    ) {
      return new Response("Unknown call", { status: 404 });
    }
    if (isTerminal(record.status)) return new Response("Call has ended", { status: 410 });
    const carrier = carrierNamed(record.carrier);
    const expectedCredential = carrier.authenticatesInStream
      ? await mediaCredential(requireSettings(this.env, "mediaStreams").MEDIA_STREAM_SECRET, record.sessionId)
      : null;
    const correlationId = request.headers.get("X-Correlation-ID") ?? record.correlationId;
    return this.media.accept(carrier, { correlationId, expectedCredential, playback: carrier.mediaEncoding(record.codec) });
  }

  // Only /live sockets are hibernatable; the carrier's media socket has listeners of its own (media-sockets.ts).
  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (this.live.handles(ws)) this.live.message(ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    if (!this.live.handles(ws)) return;
    this.live.closed(ws, code);
    await this.webCallerMayHaveLeft();
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    if (this.live.handles(ws)) this.live.closed(ws, 1011);
  }

  /** One microphone frame (PCM16LE 16 kHz mono) from a web session's browser caller. */
  private onBrowserAudio(pcm16: Uint8Array): void {
    if (this.web.record?.status !== "active" || this.webConsent.holds()) return;
    (this.voice ?? this.ensureVoice())?.callerAudio(encodeBase64(pcm16), pcm16);
    this.supervision.callerPcm16(pcm16);
    this.sessionMetrics.tick();
  }

  // ── web sessions ───────────────────────────────────────────────────────────────────────────────────────

  /** A web session created by the API: its provider is dialled now, before the browser joins. Idempotent. */
  async openWebSession(
    input: OpenWebSessionInput,
  ): Promise<{ ok: true } | { ok: false; admission?: Exclude<Admission, "admitted"> | "overloaded" }> {
    if (this.ledger.record) return { ok: false };
    if (!this.web.record) {
      // Shed, refused or unchecked, the session does not start: the API answers 503 or 429 and the caller may retry.
      if (await this.shed(input)) return { ok: false, admission: "overloaded" };
      const admission = await this.takeSlot(input);
      if (admission !== "admitted") return { ok: false, admission };
    }
    const record = this.web.open(input);
    this.ensureVoice();
    await this.alarmSchedule.wakeBy(record.createdAt + parseSettings(this.env).values.WEB_SESSION_JOIN_TIMEOUT_SECONDS * 1000);
    return { ok: true };
  }

  /** Ends the session on request: a web session at once, a phone call by hanging it up. Idempotent. */
  async endSession(correlationId: string): Promise<{ kind: "web" | "phone" | "unknown"; ok: boolean; status: string | null }> {
    if (this.ledger.record) {
      const result = await controlCall(this.ledger, this.carrier, { action: "hangup" }, correlationId);
      return { kind: "phone", ok: result.ok, status: this.ledger.record.status };
    }
    if (!this.web.record) return { kind: "unknown", ok: false, status: null };
    await this.endWebSession("ended_by_request");
    return { kind: "web", ok: true, status: this.web.record.status };
  }

  /** Ends a web session (end_call, or its caller gone past the grace period). */
  private async endWebSession(reason: string): Promise<void> {
    if (!this.web.end()) return;
    const record = this.web.record;
    if (record) metrics.observe("session_duration_seconds", {}, ((record.endedAt ?? Date.now()) - record.createdAt) / 1000);
    // The session's last counts are read now, from its voice session before that goes (pushed in the background).
    this.ctx.waitUntil(this.sessionMetrics.ended());
    this.live.broadcast({ type: "session_ended", reason, at: Date.now() });
    this.voice?.close();
    this.voice = null;
    this.live.closeAll(1000, "session ended");
    await this.releaseSlot();
    await this.conversation.flush();
    // The recording is joined in the background: an hour of parts takes a while, and ending must not wait on it.
    this.ctx.waitUntil(this.recording.finish());
    await Promise.all([this.syncWebRecord(), this.analysis.schedule()]);
  }

  private async syncWebRecord(): Promise<void> {
    await this.retryIfUnfinished(this.webRetry, (await this.web.syncToD1(this.env)) ? "drained" : "failed");
  }

  /** Disconnects browsers whose principals lost their access; asks again while any socket is open. */
  private async recheckLiveSockets(): Promise<void> {
    // A caller disconnected this way has left like any other: the grace period starts.
    if (await this.live.recheck()) await this.webCallerMayHaveLeft();
    await this.scheduleLiveRecheck();
  }

  /**
   * The next recheck, LIVE_RECHECK_MS from now, while any live socket is open. A running conversation keeps the
   * object in memory, so a timer is enough then; setting the alarm is a storage write, whose commit would hold the
   * call's audio, so it is used only when nothing else keeps the object awake (it also wakes a hibernated one).
   */
  private async scheduleLiveRecheck(): Promise<void> {
    if (this.liveRecheck !== null || !this.live.anyOpen()) return;
    if (!this.voice) {
      await this.alarmSchedule.wakeBy(Date.now() + LIVE_RECHECK_MS);
      return;
    }
    this.liveRecheck = setTimeout(() => {
      this.liveRecheck = null;
      this.ctx.waitUntil(this.recheckLiveSockets());
    }, LIVE_RECHECK_MS);
  }

  /** A web session whose browser caller left ends after a grace period, unless the caller comes back. */
  private async webCallerMayHaveLeft(): Promise<void> {
    if (this.web.record?.status !== "active" || this.live.hasCaller()) return;
    this.web.callerLeft();
    await this.alarmSchedule.wakeBy(Date.now() + CALLER_GRACE_MS);
  }

  /** The session's caller channel: a phone call, a web session, or none yet. */
  private channel(): CallerChannel | null {
    if (this.ledger.record) return this.phone;
    return this.web.record ? this.browser : null;
  }

  /**
   * The tenant's settings as this call has them: handed over with its admission slot, or else one bounded D1 read
   * (kept in the object's storage either way), shared by redaction, escalation and recording so that no part adds a
   * trip of its own on the answering path.
   */
  private async tenantSettings(): Promise<TenantSettings | null> {
    const session = this.identity();
    if (!session) return null;
    await this.redaction.learn(this.env, session.tenantId);
    return this.redaction.settings;
  }

  private identity(): SessionIdentity | null {
    return this.channel()?.identity() ?? null;
  }

  // ── the conversation with the voice AI provider ─────────────────────────────────────────────────────────

  /** The call's voice session, created (and its provider dialled) on first need; none once the call has ended. */
  /** The supervisor's speech-to-text during a takeover: OpenAI's transcription sessions, when OpenAI is configured. */
  private speechToText(): SpeechToTextEndpoint | null {
    const session = this.channel()?.identity();
    const { OPENAI_REALTIME_URL: url, OPENAI_API_KEY: apiKey } = parseSettings(this.env).values;
    if (!session || !apiKey) return null;
    return { url, apiKey, correlationId: session.correlationId };
  }

  private ensureVoice(): VoiceSession | null {
    // Checked first and cheaply: a machine's audio still reaches here, frame by frame, while its message plays.
    const record = this.ledger.record;
    if (record && agentBarred(record)) return null;
    const channel = this.channel();
    const session = channel?.identity();
    if (this.voice || !channel || !session || session.ended) return this.voice;
    const settings = parseSettings(this.env).values;
    this.tools.limitTo(session.prompt?.tools ?? null);
    this.escalations.resume();
    this.voice = new VoiceSession(this.voiceHost(), {
      provider: session.provider,
      instructions: instructionsWithContext(session.instructions ?? DEFAULT_INSTRUCTIONS, session.metadata),
      ...(session.prompt?.voice && { voice: session.prompt.voice }),
      // The first dial waits for these (each bounded): the caller's context, and the tenant's redaction and
      // recording settings, so that the first line said is stored, and the first word heard recorded, as it asked.
      callerContext: Promise.all([
        session.remoteNumber ? callerContext(this.books(session.tenantId), session.remoteNumber) : null,
        this.redaction.learn(this.env, session.tenantId),
        this.recording.learn(),
      ]).then(([context]) => context),
      callAudio: channel.callAudio,
      correlationId: session.correlationId,
      transcript: this.transcript,
      redaction: this.redaction,
      tap: this.recording,
      tools: this.tools,
      breakers: this.breakers,
      policy: {
        reconnectBaseMs: settings.PROVIDER_RECONNECT_BASE_MS,
        reconnectAttempts: settings.PROVIDER_RECONNECT_ATTEMPTS,
        responseTimeoutMs: settings.PROVIDER_RESPONSE_TIMEOUT_MS,
        order: settings.PROVIDER_ORDER,
        fleetCheckIntervalMs: settings.PROVIDER_FLEET_CHECK_SECONDS * 1000,
        failoverAfterMs: settings.PROVIDER_FAILOVER_AFTER_MS,
      },
      resumption: this.conversation.resumption,
    });
    // Until the carrier says who answered an AMD call, the provider is not dialled (answering-machine.ts says why).
    if (!(record && agentHeld(record))) this.voice.start();
    this.sessionMetrics.live();
    return this.voice;
  }

  private voiceHost(): VoiceSessionHost {
    return {
      leg: () => this.channel()?.leg() ?? null,
      publish: (event) => this.live.broadcast(event),
      log: () => this.log(),
      transcriptChanged: () => this.conversation.changed(),
      connect: (provider, onEvent, config) => connectProvider(this.env, provider, onEvent, config),
      configured: (provider) => providerConfigured(this.env, provider),
      // A live call asks every PROVIDER_FLEET_CHECK_SECONDS: at 100 calls, uncached, that was one registry query
      // every 100 ms on the isolate the audio shares; a snapshot no older than the check interval answers as well.
      fleetState: async (provider) =>
        (await healthSnapshot(this.env, parseSettings(this.env).values.PROVIDER_FLEET_CHECK_SECONDS * 1000)).find(
          (entry) => entry.provider === provider,
        )?.state ?? "unknown",
      reportHealth: (report) => {
        if (report.kind === "connect_success" || report.kind === "connect_failure") {
          metrics.count("ai_provider_requests_total", {
            provider: report.provider,
            status: report.kind === "connect_success" ? "ok" : "error",
          });
        }
        this.health.record(report);
      },
      providerChanged: (provider) => {
        this.channel()?.providerChanged(provider);
        const channel = this.identity()?.channel;
        if (channel) this.screen.providerChanged(channel, provider);
      },
      switchRecorded: (entry) => {
        this.switches.record(entry);
        metrics.count("provider_switches_total", {
          from: entry.fromProvider,
          to: entry.toProvider,
          reason: entry.reason,
          outcome: entry.outcome,
        });
        this.ctx.waitUntil(this.flushSwitches());
      },
      // Each finished turn rides the transcript's next write-behind commit and D1 batch, never a write of its own.
      turnCompleted: (turn) => {
        this.transcript.recordTurn(turn);
        this.conversation.changed();
        // Once per turn, never per frame: the turn's waterfall feeds the fleet's latency histograms.
        const { providerMs, earMs } = stagesOf(turn);
        if (providerMs !== null) metrics.observe("ai_provider_latency_seconds", { provider: turn.provider }, providerMs / 1000);
        if (earMs !== null) metrics.observe("ear_latency_seconds", { provider: turn.provider }, earMs / 1000);
      },
      conversationSignal: (signal) => this.escalations.observe(signal),
      business: () => {
        const session = this.identity();
        return session ? { engine: this.books(session.tenantId), env: this.env, drafts: this.drafts } : null;
      },
      hangup: async (reason) => this.channel()?.hangup(reason),
      transfer: async (reason) => this.channel()?.transfer(reason) ?? JSON.stringify({ ok: false, error: "The session has ended." }),
    };
  }

  /** The conversation as stored (caller lines, failed tool calls), from which the escalation counters are rebuilt. */
  private storedConversation(): ConversationSignal[] {
    const turns = this.transcript
      .recent(2_000)
      .filter((line) => line.role === "caller")
      .map((line): ConversationSignal => ({ kind: "caller_turn", text: line.text, score: sentimentOf(line.text).score }));
    const failures = Array.from({ length: this.tools.failedCount() }, (): ConversationSignal => ({ kind: "tool_outcome", failed: true }));
    return [...turns, ...failures];
  }

  /**
   * An escalation's transfer: the same call-control path as `POST /api/v1/calls/{id}/transfer`, for a phone call in
   * progress only (a web session, or a call already transferring or ended, is not transferred).
   */
  private async transferForEscalation(to: string) {
    const record = this.ledger.record;
    if (!record || (record.status !== "in_progress" && record.status !== "on_hold")) return null;
    const result = await controlCall(this.ledger, this.carrier, { action: "transfer", to }, record.correlationId);
    return result.ok
      ? { to, ok: true, status: result.status, error: null }
      : { to, ok: false, status: result.status ?? record.status, error: result.message };
  }

  /** The tenant's books as the call's voice agent (tenant-scoped by the engine; writes name this session). */
  private books(tenantId: string): BusinessEngine {
    return new BusinessEngine(
      tenantScopeFor(this.env, tenantId),
      tenantId,
      { source: "voice", by: this.identity()?.sessionId },
      this.env.CACHE,
    );
  }

  /**
   * The call reached a terminal state: media and provider sockets close, the transcript drains to D1. When the
   * carrier ended it while its media stream has not said `stop`, the stream's frames still on their way go to the
   * provider first: the teardown waits for the `stop` or the stream's close, at most STREAM_STOP_GRACE_MS. An end the
   * platform made (a hangup, a refusal, a failure) tears down at once.
   */
  private callEnded(source: TransitionSource): void {
    const record = this.ledger.record!;
    const outcome = record.status === "completed" ? "completed" : turnedAway(record) ? "refused" : "failed";
    metrics.count("calls_total", { carrier: record.carrier, direction: record.direction, outcome });
    metrics.observe("session_duration_seconds", {}, ((record.endedAt ?? Date.now()) - record.createdAt) / 1000);
    if (source === "carrier" && record.stream.state === "started" && this.media.openCount() > 0) {
      this.teardownTimer = setTimeout(() => this.tearDown(), STREAM_STOP_GRACE_MS);
      return;
    }
    this.tearDown();
  }

  /** The ended call's sockets closed and its end's writes begun: once, at the end or when its stream has finished. */
  private tearDown(): void {
    if (this.teardownTimer) clearTimeout(this.teardownTimer);
    this.teardownTimer = null;
    // The call's last counts are read from its voice session before that goes.
    this.sessionMetrics.ending();
    this.media.closeAll(1000, "call ended");
    this.supervision.sessionEnded();
    this.voice?.close();
    this.voice = null;
    // What the conversation still held unsaved commits with the transition that ended the call, not on its own
    // before the end's D1 drain.
    this.conversation.save();
    // Its provider outcomes go with the isolate's next health batch (reporter.ts); its gauges, see `afterEnd`.
    this.ctx.waitUntil(this.afterEnd());
  }

  /**
   * The end's writes and calls, each a turn after the last (yield-to-sockets.ts): together they were one chain of
   * in-process calls that held every other call's frames. A step that fails is logged; the next still runs.
   */
  private async afterEnd(): Promise<void> {
    const steps = [
      // Both drains go to D1 as one batch, the ending event with them (applyCarrierEvent), while the slot is given
      // back; then what D1 holds leaves both outboxes, the slot is marked free and the analysis is scheduled, in one
      // commit.
      async () => {
        this.d1Writes.gather(2);
        const drained = Promise.allSettled([this.ledger.flush(), this.conversation.flush()]);
        // The gauges go once the drains settle, so outboxes they empty are not reported pending (and again, emptied,
        // by the alarm); as a task of their own, since it waits for the isolate's push interval and the steps after
        // it must not.
        this.ctx.waitUntil(drained.then(() => this.sessionMetrics.ended()));
        const [, released] = await Promise.all([drained, this.slot.release(this.log(), { withNextWrite: true })]);
        this.forgetSynced();
        this.slot.save();
        await this.analysis.schedule();
        if (!released) await this.alarmSchedule.wakeBy(Date.now() + RELEASE_RETRY_MS);
      },
      () => this.recording.finish(),
    ];
    for (const step of steps) {
      await yieldToSockets();
      await step().catch((error: unknown) => this.log().warn("call.end_step_failed", { error }));
    }
  }

  /**
   * An ended call's outbox entries D1 accepted, the ledger's and the transcript's, deleted in one commit: nothing
   * follows that they could ride on (no audio waits on it any more).
   */
  private forgetSynced(): void {
    this.ledger.forgetAcknowledged();
    this.transcript.save();
  }

  private async flushSwitches(): Promise<void> {
    const session = this.identity();
    if (session) await this.retryIfUnfinished(this.switchRetry, await this.switches.flush(this.env, session.tenantId, session.sessionId));
  }

  // ── switching providers (the Sessions API) ─────────────────────────────────────────────────────────────

  async switchProvider(to: ProviderName, options: Omit<SwitchOptions, "reason">): Promise<SwitchResult | { unknown: true }> {
    const voice = this.ensureVoice();
    if (!voice) return { unknown: true };
    return voice.switchTo(to, { ...options, reason: "manual" });
  }

  async autoFailover(): Promise<SwitchResult | { unknown: true } | { noCandidate: true }> {
    const voice = this.ensureVoice();
    if (!voice) return { unknown: true };
    const before = voice.lastSwitch;
    const switched = await voice.failover();
    return switched && voice.lastSwitch && voice.lastSwitch !== before ? voice.lastSwitch : { noCandidate: true };
  }

  async switchStatus() {
    return {
      inProgress: this.voice?.switchInProgress ?? null,
      last: this.voice?.lastSwitch ?? this.switches.entries().at(-1) ?? null,
      provider: this.voice?.currentProvider ?? this.identity()?.provider ?? null,
    };
  }

  /** What only the live object knows: its provider link and counters (null once the session has ended). */
  async liveState() {
    const voice = this.voice;
    return voice ? { provider: voice.currentProvider, providerState: voice.state, counters: { ...voice.stats } } : null;
  }

  /** A drain that did not finish (D1 failed, or it stopped at its bound) runs again from the alarm. */
  private async retryIfUnfinished(retry: DrainRetry, result: DrainResult): Promise<void> {
    const delay = retry.after(result);
    if (delay !== null) await this.alarmSchedule.wakeBy(Date.now() + delay);
  }

  /** What waits for D1 in each of the session's outboxes (outbox-backlog.ts), and which are past their bound. */
  async pendingSync(): Promise<PendingSync> {
    const counts = this.outboxCounts();
    return {
      events: counts.events,
      transcriptLines: counts.transcript,
      switches: counts.switches,
      overBound: (Object.keys(counts) as OutboxKind[]).filter((kind) => counts[kind] > OUTBOX_BOUNDS[kind]),
    };
  }

  private outboxCounts(): Record<OutboxKind, number> {
    return {
      events: this.ledger.record ? this.ledger.pendingCount() : 0,
      transcript: this.transcript.pendingCount(),
      switches: this.switches.pendingCount(),
    };
  }

  /**
   * The session's gauges for the fleet's metrics: while it lives, itself, its sockets, its provider and breakers;
   * ended, only what its outboxes still hold for D1 (a D1 outage outlasts calls), then nothing.
   */
  private metricGauges(): Array<[string, number]> {
    const session = this.identity();
    const values = (Object.entries(this.outboxCounts()) as Array<[OutboxKind, number]>)
      .filter(([, pending]) => pending > 0)
      .map(([kind, pending]): [string, number] => [seriesKey("outbox_pending", { kind }), pending]);
    if (!session || session.ended) return values;
    const connected = this.voice?.state === "connected" ? this.voice.currentProvider : null;
    values.push(
      [seriesKey("call_sessions_active", { channel: session.channel }), 1],
      [seriesKey("websocket_connections_active", { kind: "carrier" }), this.media.openCount()],
      [seriesKey("websocket_connections_active", { kind: "live" }), this.live.openCount()],
      [seriesKey("websocket_connections_active", { kind: "provider" }), connected ? 1 : 0],
    );
    if (connected) values.push([seriesKey("ai_provider_active_sessions", { provider: connected }), 1]);
    for (const provider of PROVIDER_NAMES) {
      values.push([seriesKey("circuit_breaker_state", { provider }), BREAKER_LEVEL[this.breakers.state(provider).state]]);
    }
    return values;
  }

  /**
   * Lifecycle frames from the carrier's media socket go into the call's history (audio itself is not stored), and to
   * D1 within 2 s: a start after the burst of its call's setup, a stop with the status callback's flush that follows.
   */
  private onMediaFrame(frame: MediaFrame): void {
    const record = this.ledger.record;
    if (!record) return;
    const base = { from: record.status, to: null, outcome: "applied" as const };
    if (frame.type === "start") {
      record.stream = { state: "started", streamId: frame.streamId, encoding: frame.encoding };
      this.ensureVoice()?.legChanged();
      this.supervision.legChanged();
      // A carrier streams only answered calls: an authenticated stream is the answer for calls whose carrier
      // reports none (Twilio sends inbound calls' `in-progress` callback only when asked, and our TwiML answers).
      if (record.status === "initiated" || record.status === "ringing")
        this.ledger.transition("in_progress", "carrier", "media.start", frame.encoding);
      else this.ledger.note("carrier", "media.start", { ...base, detail: frame.encoding });
    } else if (frame.type === "stop") {
      record.stream = { ...record.stream, state: "stopped" };
      this.ledger.note("carrier", "media.stop", base);
      // Every frame before it has reached the provider: a call that ended meanwhile is torn down now.
      if (this.teardownTimer) this.tearDown();
    } else if (frame.type === "dtmf") {
      this.ledger.note("carrier", "media.dtmf", { ...base, detail: this.redaction.digit(frame.digit) });
      this.ensureVoice()?.dtmf(frame.digit);
    } else {
      return;
    }
    this.ledger.flushSoon();
  }
}
