import type { Deepgram } from "@deepgram/sdk";
import { isRecord } from "../../../../workers/shared/json.ts";
import type { AudioFormat } from "../../../media/audio/audio-format.ts";
import { base64Capacity, decodeBase64Into, encodeBase64 } from "../../../media/audio/pcm16.ts";
import {
  type ConversationItem,
  guidanceText,
  type ProviderConnectOptions,
  type ProviderSessionConfig,
  type ToolDefinition,
  type VoiceProvider,
} from "../provider.ts";
import { ProviderSetupError } from "../provider-socket.ts";
import { SocketProvider, type SocketProviderStats } from "../socket-provider.ts";

/**
 * Deepgram Voice Agent adapter: JSON control messages as text frames, audio both ways as raw
 * binary frames in the call's own encoding (µ-law, A-law or linear16 pass straight through, no transcoding).
 * Wire messages are the @deepgram/sdk agent types. Deepgram stops speaking on barge-in by itself; `interrupt`
 * only stops forwarding the rest of the interrupted turn's audio that is already in flight.
 *
 * Longer than the ~300 lines a part aims at, on purpose: it is one vendor's whole wire protocol — setup, both
 * directions, barge-in, failure rules — and reads best in one place; its helpers are local to that protocol.
 */

type AgentSettings = Deepgram.agent.AgentV1Settings;
type ClientMessage =
  | AgentSettings
  | Deepgram.agent.AgentV1KeepAlive
  | Deepgram.agent.AgentV1InjectUserMessage
  | Deepgram.agent.AgentV1UpdatePrompt
  | Deepgram.agent.AgentV1SendFunctionCallResponse;
type FunctionCall = Deepgram.agent.AgentV1FunctionCallRequest.Functions.Item;

/** Deepgram closes a connection after ~10 s without audio or messages; it asks for KeepAlive every 8 s. */
export const DEEPGRAM_KEEPALIVE_INTERVAL_MS = 8_000;
/** Idle is judged in quarters of the interval, so the longest silence on the wire is one interval. */
const KEEPALIVE_CHECKS_PER_INTERVAL = 4;
/** Far above any control message or audio chunk (1 MiB = 2 minutes of µ-law); larger ones close with 1009. */
const MAX_INBOUND_MESSAGE_BYTES = 1024 * 1024;
/** Caller audio frames are ~20 ms; anything this large in base64 is a caller bug, dropped. */
const MAX_OUTBOUND_AUDIO_BASE64_CHARS = 256 * 1024;
const MAX_INJECTED_TEXT_CHARS = 4_000;
/** UNVERIFIED limit: Deepgram does not document one for `think.prompt`; older history is dropped first. */
const MAX_PROMPT_CHARS = 25_000;
const DEFAULT_SPEAK_MODEL = "aura-2-thalia-en";

const ENCODINGS = { pcmu: "mulaw", pcma: "alaw", pcm16: "linear16" } as const;

export interface DeepgramAgentTuning {
  /** Tests shorten this to observe KeepAlive without waiting 8 s. */
  keepAliveIntervalMs?: number;
}

export async function connectDeepgramAgent(
  options: ProviderConnectOptions,
  config: ProviderSessionConfig,
  tuning: DeepgramAgentTuning = {},
): Promise<VoiceProvider> {
  const agent = new DeepgramAgent(options, tuning.keepAliveIntervalMs ?? DEEPGRAM_KEEPALIVE_INTERVAL_MS);
  await agent.connect(config);
  return agent;
}

/** The Settings message for a session: the call's audio format both ways, and the conversation so far. */
export function deepgramSettings(config: ProviderSessionConfig): AgentSettings {
  const encoding = ENCODINGS[config.callAudio.encoding];
  const sampleRate = config.callAudio.sampleRate;
  return {
    type: "Settings",
    audio: {
      input: { encoding, sample_rate: sampleRate },
      output: { encoding, sample_rate: sampleRate, container: "none" },
    },
    agent: {
      listen: { provider: { type: "deepgram", version: "v1", model: "nova-3", language: "en" } },
      think: {
        provider: { type: "open_ai", model: "gpt-4o-mini" },
        prompt: renderPrompt(config.instructions, config.history),
        functions: config.tools.map(toFunction),
      },
      // A configured voice applies only when it names a Deepgram Aura voice (others belong to other providers).
      speak: { provider: { type: "deepgram", model: config.voice?.startsWith("aura-") ? config.voice : DEFAULT_SPEAK_MODEL } },
    },
  };
}

function toFunction(tool: ToolDefinition) {
  return { name: tool.name, description: tool.description, parameters: tool.parameters };
}

function renderItem(item: ConversationItem): string {
  if (item.kind === "message") return `${item.role === "caller" ? "Caller" : "Agent"}: ${item.text}`;
  return `Tool ${item.name}(${item.arguments}) returned: ${item.result}`;
}

/** Instructions, then as much of the most recent history as fits the prompt limit. */
function renderPrompt(instructions: string, history: ConversationItem[]): string {
  if (history.length === 0) return instructions;
  const header = "\n\nThe conversation so far (continue it; do not greet the caller again):\n";
  let budget = MAX_PROMPT_CHARS - instructions.length - header.length;
  const lines: string[] = [];
  for (let index = history.length - 1; index >= 0; index--) {
    const line = renderItem(history[index]!);
    if (line.length + 1 > budget) break;
    budget -= line.length + 1;
    lines.push(line);
  }
  return lines.length === 0 ? instructions : instructions + header + lines.reverse().join("\n");
}

const text = (value: unknown): string => (typeof value === "string" ? value : "");

function parseFunctionCall(value: unknown): FunctionCall | null {
  if (!isRecord(value) || typeof value.id !== "string" || typeof value.name !== "string") return null;
  if (!value.id || !value.name) return null;
  return { id: value.id, name: value.name, arguments: text(value.arguments) || "{}", client_side: value.client_side !== false };
}

/** Counts of what the adapter skipped, beyond the shared ones. */
export interface DeepgramAgentStats extends SocketProviderStats {
  /** Caller audio frames too large or not base64 (dropped). */
  badAudioFrames: number;
}

class DeepgramAgent extends SocketProvider {
  readonly name = "deepgram" as const;
  private readonly options: ProviderConnectOptions;
  private readonly keepAliveIntervalMs: number;
  private format: AudioFormat = { encoding: "pcmu", sampleRate: 8000 };
  private settings: AgentSettings | null = null;
  /** The think prompt in force: what a supervisor's `UpdatePrompt` extends. */
  private prompt = "";
  private keepAliveTimer: ReturnType<typeof setInterval> | undefined;
  private checksSinceLastSend = 0;
  private badAudioFrames = 0;
  private agentTurns = 0;
  private currentItemId: string | null = null;
  private currentItemInterrupted = false;

  constructor(options: ProviderConnectOptions, keepAliveIntervalMs: number) {
    super(options.onEvent, { maxInboundSize: MAX_INBOUND_MESSAGE_BYTES });
    this.options = options;
    this.keepAliveIntervalMs = keepAliveIntervalMs;
  }

  get inputFormat(): AudioFormat {
    return this.format;
  }

  get outputFormat(): AudioFormat {
    return this.format;
  }

  get stats(): DeepgramAgentStats {
    return { ...this.baseCounts, badAudioFrames: this.badAudioFrames };
  }

  // ── setup: Welcome → Settings → SettingsApplied ──────────────────────────────────────────────────────────

  protected endpoint(config: ProviderSessionConfig): { url: string; headers: Record<string, string> } {
    this.format = config.callAudio;
    this.settings = deepgramSettings(config);
    this.prompt = renderPrompt(config.instructions, config.history);
    return { url: this.options.url, headers: { Authorization: `Token ${this.options.apiKey}`, "X-Correlation-ID": config.correlationId } };
  }

  /** Deepgram speaks first (Welcome): nothing to send yet. */
  protected opened(): void {}

  protected setupMessage(message: Record<string, unknown>): void {
    const type = message.type;
    if (typeof type !== "string") return this.malformed("message without type");
    if (type === "Welcome" && this.settings) {
      this.send(this.settings);
      this.settings = null;
    } else if (type === "SettingsApplied") {
      this.setupDone();
    } else if (type === "Error") {
      const reason = `settings refused: ${text(message.code)} ${text(message.description)}`.trim();
      this.setupFailed(new ProviderSetupError("refused", reason));
    }
  }

  protected override ready(): void {
    this.keepAliveTimer = setInterval(() => this.keepAliveCheck(), this.keepAliveIntervalMs / KEEPALIVE_CHECKS_PER_INTERVAL);
  }

  protected override stopped(): void {
    clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
  }

  // ── outbound ─────────────────────────────────────────────────────────────────────────────────────────────

  sendAudio(base64: string): void {
    if (!this.isOpen) return;
    if (base64.length > MAX_OUTBOUND_AUDIO_BASE64_CHARS) {
      this.badAudioFrames = this.report("malformed_audio", "caller audio frame too large", this.badAudioFrames);
      return;
    }
    // A fresh buffer per frame: send() may hold on to it after returning.
    const bytes = new Uint8Array(base64Capacity(base64));
    let length: number;
    try {
      length = decodeBase64Into(base64, bytes);
    } catch {
      this.badAudioFrames = this.report("malformed_audio", "caller audio frame is not base64", this.badAudioFrames);
      return;
    }
    if (this.sendBinary(bytes.subarray(0, length))) this.checksSinceLastSend = 0;
  }

  sendText(textToInject: string): void {
    const content = textToInject.trim().slice(0, MAX_INJECTED_TEXT_CHARS);
    if (content) this.send({ type: "InjectUserMessage", content });
  }

  /**
   * `UpdatePrompt` (not `InjectAgentMessage`, which the agent would speak, nor `InjectUserMessage`, which it would
   * answer). The SDK documents the prompt as the new system prompt, so the whole prompt is sent: what it was, and the
   * addition.
   */
  guide(text: string): void {
    this.extendPrompt(guidanceText(text));
  }

  addContext(items: ConversationItem[]): void {
    if (items.length === 0) return;
    this.extendPrompt(`While a human supervisor had the call:\n${items.map(renderItem).join("\n")}`);
  }

  private extendPrompt(addition: string): void {
    const prompt = `${this.prompt}\n\n${addition}`;
    if (prompt.length > MAX_PROMPT_CHARS) return;
    this.prompt = prompt;
    this.send({ type: "UpdatePrompt", prompt });
  }

  sendToolResult(callId: string, name: string, result: string): void {
    this.send({ type: "FunctionCallResponse", id: callId, name, content: result });
  }

  /** Deepgram has no truncation: it stopped on its own; drop what is still arriving for that turn. */
  interrupt(itemId: string, _heardMs: number): void {
    if (itemId === this.currentItemId) this.currentItemInterrupted = true;
  }

  private send(message: ClientMessage): void {
    if (this.sendJson(message)) this.checksSinceLastSend = 0;
  }

  private keepAliveCheck(): void {
    if (++this.checksSinceLastSend >= KEEPALIVE_CHECKS_PER_INTERVAL) this.send({ type: "KeepAlive" });
  }

  // ── inbound ──────────────────────────────────────────────────────────────────────────────────────────────

  /** Binary frames are the agent's audio, in the call's encoding. */
  protected override binary(data: ArrayBuffer): void {
    if (!this.isOpen) return this.malformed("audio before SettingsApplied");
    this.agentAudio(new Uint8Array(data));
  }

  protected message(message: Record<string, unknown>): void {
    if (typeof message.type !== "string") return this.malformed("message without type");
    this.control(message.type, message);
  }

  private control(type: string, message: Record<string, unknown>): void {
    switch (type) {
      case "ConversationText": {
        const role = message.role === "user" ? "caller" : message.role === "assistant" ? "agent" : null;
        const content = text(message.content);
        if (!role) return this.malformed("ConversationText role");
        if (role === "caller") return this.emit({ type: "transcript", role, text: content });
        // The agent's line belongs to the turn it is spoken in (before or after AgentStartedSpeaking), so a barge-in
        // into that turn marks this line interrupted.
        return this.emit({ type: "transcript", role, text: content, itemId: this.agentTurn() });
      }
      case "UserStartedSpeaking":
        return this.emit({ type: "caller_speech_started" });
      case "AgentStartedSpeaking":
        this.agentTurn();
        return;
      case "AgentAudioDone": {
        const itemId = this.currentItemId ?? this.startAgentTurn();
        this.currentItemId = null;
        return this.emit({ type: "agent_audio_done", itemId });
      }
      case "FunctionCallRequest":
        return this.functionCalls(message.functions);
      case "Warning":
      case "Error":
        // Deepgram closes the socket after a fatal Error; the `closed` event reports that.
        return this.emit({ type: "error", code: text(message.code) || type, message: text(message.description), fatal: false });
      case "InjectionRefused":
        return this.emit({ type: "error", code: "injection_refused", message: text(message.message), fatal: false });
      default:
        // Welcome, SettingsApplied, AgentThinking, History, *Updated, FunctionCallCancelled, and future additions.
        return;
    }
  }

  private functionCalls(functions: unknown): void {
    if (!Array.isArray(functions)) return this.malformed("FunctionCallRequest without functions");
    for (const value of functions as unknown[]) {
      const call = parseFunctionCall(value);
      if (!call) this.malformed("function call without id or name");
      // Server-side functions run at Deepgram; only client-side ones are ours to execute.
      else if (call.client_side) this.emit({ type: "tool_call", callId: call.id, name: call.name, arguments: call.arguments });
    }
  }

  /** The agent turn under way, or a new one when the last was finished or interrupted. */
  private agentTurn(): string {
    return this.currentItemId !== null && !this.currentItemInterrupted ? this.currentItemId : this.startAgentTurn();
  }

  private startAgentTurn(): string {
    const itemId = `dg-agent-${++this.agentTurns}`;
    this.currentItemId = itemId;
    this.currentItemInterrupted = false;
    return itemId;
  }

  // Per-frame path: no logging, no allocation beyond the base64 string.
  private agentAudio(bytes: Uint8Array): void {
    const itemId = this.currentItemId ?? this.startAgentTurn();
    if (this.currentItemInterrupted || bytes.byteLength === 0) return;
    this.emit({ type: "agent_audio", base64: encodeBase64(bytes), itemId });
  }

  /** Counted, and reported as an error event at counts 1, 2, 4, 8…, so a flood cannot flood the log. */
  protected override malformed(reason: string): void {
    super.malformed(reason);
    this.report("malformed_message", reason, this.baseCounts.malformedMessages - 1);
  }

  /** Counts one skipped message or frame; reported at counts 1, 2, 4, 8…, so a flood cannot flood the log. */
  private report(code: string, reason: string, countSoFar: number): number {
    const count = countSoFar + 1;
    if ((count & (count - 1)) === 0) this.emit({ type: "error", code, message: `${reason} (${count} so far)`, fatal: false });
    return count;
  }
}
