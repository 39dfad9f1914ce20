import type { SwitchReason } from "../../workers/shared/db/schema.ts";
import type { ConversationSignal } from "../../workers/shared/escalation.ts";
import type { LiveEvent } from "../../workers/shared/live-protocol.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import type { HealthReport } from "../../workers/shared/provider-health.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import type { TurnRecord } from "../../workers/shared/turn-timings.ts";
import type { Redaction } from "../call/redaction.ts";
import type { TranscriptLog } from "../call/transcript-log.ts";
import type { AudioFormat } from "../media/audio/audio-format.ts";
import type { AudioTap } from "../media/audio-tap.ts";
import type { CallerLeg } from "../media/caller-leg.ts";
import type { SwitchEntry } from "../session/switch-log.ts";
import type { Books } from "./business-tools.ts";
import type { CircuitBreakers } from "./circuit-breaker.ts";
import type { ProviderEvent, ProviderSessionConfig, VoiceProvider } from "./providers/provider.ts";
import type { ToolRunner } from "./tools.ts";

/** What the voice session and its parts are given and answer: its host, options, policy, results and counts. */

/** Where the caller is: a carrier media stream or a browser. */
export interface VoiceSessionHost {
  leg(): CallerLeg | null;
  publish(event: LiveEvent): void;
  log(): Logger;
  /** A transcript line was written: drain it to D1 soon, off the audio path. */
  transcriptChanged(): void;
  hangup(reason: string): Promise<void>;
  transfer(reason: string): Promise<string>;
  /** The session's tenant's books, for the agent's business tools; null when the session has no tenant yet. */
  business(): Books | null;
  connect(provider: ProviderName, onEvent: (event: ProviderEvent) => void, config: ProviderSessionConfig): Promise<VoiceProvider>;
  /** Whether the provider can be dialled with this deployment's settings. */
  configured(provider: ProviderName): boolean;
  /** The fleet registry's view of a provider (cached briefly); "unknown" when it cannot be reached. */
  fleetState(provider: ProviderName): Promise<string>;
  reportHealth(report: HealthReport): void;
  /** The session now runs on `provider` (persist it); and a finished switch, for the durable history. */
  providerChanged(provider: ProviderName): void;
  switchRecorded(entry: SwitchEntry): void;
  /**
   * An agent turn is over, with its latency at the caller's ear (voice/turn-clock.ts): the one place turns pass,
   * once each, to be stored with the transcript and observed by metrics. It may be called from the audio path (a new
   * reply's first chunk, a barge-in), so what hooks here must not await, write storage or log.
   */
  turnCompleted(turn: TurnRecord): void;
  /** A caller turn (its line as stored and its sentiment) or a tool's outcome, once each, per turn: the escalation rules watch them. */
  conversationSignal(signal: ConversationSignal): void;
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
  /** The voice to speak with (the session's prompt's), passed to each provider as is; absent: the provider's default. */
  voice?: string;
  /**
   * What the agent should know before it answers, found off the media path (the caller recognised by their number,
   * voice/caller-context.ts): the first dial waits for it, so it rides the instructions of every provider session
   * (reconnects and switches too). It must settle promptly and never reject (its producer bounds it with a timeout).
   */
  callerContext?: Promise<string | null>;
  callAudio: AudioFormat;
  correlationId: string;
  transcript: TranscriptLog;
  /** The tenant's PII redaction, applied to each transcript line and DTMF digit before it is stored or shown. */
  redaction: Redaction;
  /** The session's recording, told what was sent each way and what the caller heard (off: it ignores everything). */
  tap: AudioTap;
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
  /** Frames of a web caller's screen handed to the provider, and those none could take (no vision, not connected). */
  screenFrames: number;
  screenFramesDropped: number;
}
