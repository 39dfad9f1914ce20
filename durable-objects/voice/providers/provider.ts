import type { ScreenMimeType } from "../../../workers/shared/live-protocol.ts";
import type { Logger } from "../../../workers/shared/logger.ts";
import type { ProviderName } from "../../../workers/shared/settings.ts";
import type { AudioFormat } from "../../media/audio/audio-format.ts";

/**
 * One interface for every voice AI engine. The call's object speaks only this vocabulary; each adapter
 * (`openai/realtime.ts`, `gemini/live.ts`, `deepgram/agent.ts`, `local/engine.ts`, reached through `registry.ts`) translates it to and from its
 * provider's wire protocol, with the wire messages typed from the vendors' packages.
 */

export interface ToolDefinition {
  name: string;
  description: string;
  /** JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
}

/** The conversation so far, replayed into a new provider session (reconnect, switch, rollover). */
export type ConversationItem =
  | { kind: "message"; role: "caller" | "agent"; text: string }
  | { kind: "tool"; callId: string; name: string; arguments: string; result: string };

export interface ProviderSessionConfig {
  instructions: string;
  tools: ToolDefinition[];
  history: ConversationItem[];
  /** The audio the call carries; adapters pick the provider formats closest to it (pass-through when equal). */
  callAudio: AudioFormat;
  voice?: string;
  /** Sent as X-Correlation-ID on the provider connection, so a provider-side trace matches ours. */
  correlationId: string;
  /** Gemini session resumption handle from an earlier connection of this session. */
  resumptionHandle?: string;
  /** The session's logger (its lines name the session, tenant and correlation id): setup milestones go here. */
  log: Logger;
}

export type ProviderEvent =
  /** Agent speech, in `outputFormat`, base64 as received; `itemId` names the response part for truncation. */
  | { type: "agent_audio"; base64: string; itemId: string }
  | { type: "agent_audio_done"; itemId: string }
  | { type: "transcript"; role: "caller" | "agent"; text: string; itemId?: string }
  /** The caller started talking over the agent (barge-in). */
  | { type: "caller_speech_started" }
  /** The provider's turn detection decided the caller finished speaking (when it says so: OpenAI, the local engine). */
  | { type: "caller_speech_stopped" }
  | { type: "tool_call"; callId: string; name: string; arguments: string }
  /** The provider will end this session soon; open a fresh one with the context (rollover). */
  | { type: "ending_soon"; timeLeftMs: number }
  | { type: "resumption_handle"; handle: string }
  /** Tokens the provider says a response (OpenAI) or a turn (Gemini) used. */
  | { type: "usage"; inputTokens: number; outputTokens: number }
  | { type: "error"; code: string; message: string; fatal: boolean }
  | { type: "closed"; code: number; reason: string };

/** One still image for the agent to see (a frame of a web caller's shared screen): validated, base64 as received. */
export interface ImageFrame {
  mimeType: ScreenMimeType;
  base64: string;
}

export interface VoiceProvider {
  readonly name: ProviderName;
  /** What `sendAudio` takes and what `agent_audio` carries, fixed once `connect` resolves. */
  readonly inputFormat: AudioFormat;
  readonly outputFormat: AudioFormat;
  /** Opens and configures the session; resolves when the provider is ready for audio, rejects on refusal. */
  connect(config: ProviderSessionConfig): Promise<void>;
  /** Caller audio in `inputFormat`, base64. Never awaits: the per-frame path does not wait on the network. */
  sendAudio(base64: string): void;
  /** Text the caller "said" another way (DTMF digits, a supervisor's whisper to the agent). */
  sendText(text: string): void;
  sendToolResult(callId: string, name: string, result: string): void;
  /**
   * A supervisor's whisper: guidance the agent should follow from now on, never speak aloud nor answer as a caller
   * turn (no response is asked for).
   */
  guide(text: string): void;
  /**
   * What was said while a supervisor had the call (their takeover): added to the agent's conversation as context, with
   * no response asked for, so the agent resumes knowing it.
   */
  addContext(items: ConversationItem[]): void;
  /**
   * Present only on providers whose model accepts images (the registry's `acceptsImages` says which, before any
   * connection): the caller's screen as it is now, as context with no response asked for. Never awaits.
   */
  sendImage?(image: ImageFrame): void;
  /** Barge-in: the caller heard `heardMs` of `itemId`; drop the rest on the provider's side. */
  interrupt(itemId: string, heardMs: number): void;
  close(): void;
}

/** The session's setup was sent to the provider (instructions, tools, formats, the conversation so far). */
export function logSessionSetup(provider: VoiceProvider, config: ProviderSessionConfig): void {
  config.log.info("session.setup", {
    provider: provider.name,
    tools: config.tools.length,
    historyItems: config.history.length,
    resumed: config.resumptionHandle !== undefined,
  });
}

/** The provider confirmed the setup: the session is ready for audio, in these formats. */
export function logSessionConfigured(provider: VoiceProvider, config: ProviderSessionConfig, setupMs: number): void {
  const format = (f: AudioFormat) => `${f.encoding}/${f.sampleRate}`;
  config.log.info("session.configured", {
    provider: provider.name,
    setupMs,
    inputFormat: format(provider.inputFormat),
    outputFormat: format(provider.outputFormat),
  });
}

/** How a supervisor's whisper is framed for a provider that takes it as text (never as the caller's words). */
export const guidanceText = (text: string) => `[Guidance from your human supervisor; follow it, never read it aloud] ${text}`;

/** How a keypad digit reaches an agent: as caller text in this form, whatever the provider. */
export const dtmfText = (digit: string) => `[DTMF] ${digit}`;

export type ProviderEventHandler = (event: ProviderEvent) => void;

export interface ProviderConnectOptions {
  /** Where the adapter dials (from settings, so tests point at simulators). */
  url: string;
  apiKey: string;
  onEvent: ProviderEventHandler;
}
