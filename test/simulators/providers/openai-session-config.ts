import type {
  AudioTranscription,
  RealtimeAudioFormats,
  RealtimeAudioInputTurnDetection,
  RealtimeFunctionTool,
  RealtimeSessionCreateRequest,
  RealtimeTranscriptionSessionCreateRequest,
} from "openai/resources/realtime/realtime";
import type { AudioFormat } from "./audio.ts";
import { isRecord } from "./wire.ts";

/**
 * The OpenAI Realtime session configuration the simulator honours, and `session.update` merging. The GA shape
 * (`session.type: "realtime"`, `session.audio.{input,output}`) is the protocol; the beta shape
 * (`input_audio_format: "g711_ulaw"`, top-level `voice`/`turn_detection`/`input_audio_transcription`) is
 * tolerated and mapped onto it. `session.updated` always answers in the GA shape.
 */

export type TurnDetection = RealtimeAudioInputTurnDetection;

export interface SessionConfig {
  model: string;
  instructions: string;
  voice: string;
  outputModalities: Array<"text" | "audio">;
  inputFormat: RealtimeAudioFormats;
  outputFormat: RealtimeAudioFormats;
  /** Transcription events are sent only when the session asks for transcription, as the real service does. */
  transcription: AudioTranscription | null;
  /** null: no server VAD; the client commits and asks for responses itself. */
  turnDetection: TurnDetection | null;
  tools: RealtimeFunctionTool[];
  toolChoice: "auto" | "none" | "required";
}

/** What the service reports in `session.created`/`session.updated`. */
export type SessionObject =
  | (RealtimeSessionCreateRequest & { id: string; object: "realtime.session"; expires_at: number })
  | (RealtimeTranscriptionSessionCreateRequest & { id: string; object: "realtime.transcription_session" });

const DEFAULT_TURN_DETECTION: TurnDetection = {
  type: "server_vad",
  threshold: 0.5,
  prefix_padding_ms: 300,
  silence_duration_ms: 500,
  create_response: true,
  interrupt_response: true,
};
const PCM_24K: RealtimeAudioFormats = { type: "audio/pcm", rate: 24000 };
const BETA_FORMATS: Record<string, RealtimeAudioFormats> = {
  pcm16: PCM_24K,
  g711_ulaw: { type: "audio/pcmu" },
  g711_alaw: { type: "audio/pcma" },
};

export function defaultSessionConfig(model: string | null): SessionConfig {
  return {
    model: model ?? "gpt-realtime",
    instructions: "",
    voice: "alloy",
    outputModalities: ["audio"],
    inputFormat: PCM_24K,
    outputFormat: PCM_24K,
    transcription: null,
    turnDetection: DEFAULT_TURN_DETECTION,
    tools: [],
    toolChoice: "auto",
  };
}

/** A transcription session (`?intent=transcription`) reports its input side only. */
export function transcriptionSessionObject(config: SessionConfig, id: string): SessionObject {
  const { inputFormat: format, turnDetection } = config;
  const input = { format, turn_detection: turnDetection, ...(config.transcription ? { transcription: config.transcription } : {}) };
  return { type: "transcription", object: "realtime.transcription_session", id, audio: { input } };
}

export function sessionObject(config: SessionConfig, id: string): SessionObject {
  return {
    type: "realtime",
    object: "realtime.session",
    id,
    model: config.model,
    output_modalities: config.outputModalities,
    instructions: config.instructions,
    tools: config.tools,
    tool_choice: config.toolChoice,
    expires_at: Math.floor(Date.now() / 1000) + 3600,
    audio: {
      input: {
        format: config.inputFormat,
        turn_detection: config.turnDetection,
        ...(config.transcription ? { transcription: config.transcription } : {}),
      },
      output: { format: config.outputFormat, voice: config.voice },
    },
  };
}

export function wireFormat(format: RealtimeAudioFormats): AudioFormat {
  if (format.type === "audio/pcmu") return { encoding: "mulaw", sampleRate: 8000 };
  if (format.type === "audio/pcma") return { encoding: "alaw", sampleRate: 8000 };
  return { encoding: "pcm16", sampleRate: 24000 };
}

export function silenceMs(turnDetection: TurnDetection | null): number | undefined {
  return turnDetection?.type === "server_vad" ? turnDetection.silence_duration_ms : undefined;
}

/** `session` of a `session.update` applied to `current`; a string is the error message for the client. */
export function mergeSessionUpdate(current: SessionConfig, session: Record<string, unknown>): SessionConfig | string {
  const isGaShape = session.type === "realtime" || isRecord(session.audio);
  return isGaShape ? mergeGa(current, session) : mergeBeta(current, session);
}

function mergeGa(current: SessionConfig, session: Record<string, unknown>): SessionConfig | string {
  const next = { ...current };
  const audio = isRecord(session.audio) ? session.audio : {};
  const input = isRecord(audio.input) ? audio.input : {};
  const output = isRecord(audio.output) ? audio.output : {};
  for (const [value, key, param] of [
    [input.format, "inputFormat", "session.audio.input.format"],
    [output.format, "outputFormat", "session.audio.output.format"],
  ] as const) {
    if (value === undefined) continue;
    const format = parseFormat(value);
    if (!format) return `Invalid value for '${param}': supported are audio/pcm (rate 24000), audio/pcmu, audio/pcma.`;
    next[key] = format;
  }
  if (output.voice !== undefined) {
    const voice = parseVoice(output.voice);
    if (voice === undefined) return invalidVoice(output.voice);
    next.voice = voice;
  }
  if (input.transcription !== undefined) next.transcription = parseTranscription(input.transcription);
  if (input.turn_detection !== undefined) {
    const turnDetection = parseTurnDetection(input.turn_detection);
    if (typeof turnDetection === "string") return turnDetection;
    next.turnDetection = turnDetection;
  }
  return mergeCommon(next, session, session.output_modalities);
}

function mergeBeta(current: SessionConfig, session: Record<string, unknown>): SessionConfig | string {
  const next = { ...current };
  for (const [field, key] of [
    ["input_audio_format", "inputFormat"],
    ["output_audio_format", "outputFormat"],
  ] as const) {
    const value = session[field];
    if (value === undefined) continue;
    const format = typeof value === "string" ? BETA_FORMATS[value] : undefined;
    if (!format) return `Invalid value for 'session.${field}': supported values are pcm16, g711_ulaw, g711_alaw.`;
    next[key] = format;
  }
  if (session.voice !== undefined) {
    const voice = parseVoice(session.voice);
    if (voice === undefined) return invalidVoice(session.voice);
    next.voice = voice;
  }
  if (session.input_audio_transcription !== undefined) {
    next.transcription = parseTranscription(session.input_audio_transcription);
  }
  if (session.turn_detection !== undefined) {
    const turnDetection = parseTurnDetection(session.turn_detection);
    if (typeof turnDetection === "string") return turnDetection;
    next.turnDetection = turnDetection;
  }
  return mergeCommon(next, session, session.modalities);
}

function mergeCommon(next: SessionConfig, session: Record<string, unknown>, modalities: unknown): SessionConfig {
  if (typeof session.model === "string") next.model = session.model;
  if (typeof session.instructions === "string") next.instructions = session.instructions;
  if (Array.isArray(modalities)) {
    next.outputModalities = modalities.filter((value) => value === "text" || value === "audio");
  }
  if (Array.isArray(session.tools)) next.tools = session.tools.filter(isFunctionTool);
  const { tool_choice: toolChoice } = session;
  if (toolChoice === "auto" || toolChoice === "none" || toolChoice === "required") next.toolChoice = toolChoice;
  return next;
}

/** The built-in voices (openai package, RealtimeAudioConfigOutput.voice); custom ones are `{ id }` objects. */
const VOICES = ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"];

function parseVoice(value: unknown): string | undefined {
  if (typeof value === "string") return VOICES.includes(value) ? value : undefined;
  return isRecord(value) && typeof value.id === "string" ? value.id : undefined;
}

function invalidVoice(value: unknown): string {
  const supported = VOICES.map((voice) => `'${voice}'`).join(", ");
  return `Invalid value: '${typeof value === "string" ? value : JSON.stringify(value)}'. Supported values are: ${supported}.`;
}

function parseFormat(value: unknown): RealtimeAudioFormats | undefined {
  if (!isRecord(value)) return undefined;
  if (value.type === "audio/pcmu") return { type: "audio/pcmu" };
  if (value.type === "audio/pcma") return { type: "audio/pcma" };
  if (value.type === "audio/pcm" && (value.rate === undefined || value.rate === 24000)) return PCM_24K;
  return undefined;
}

function parseTranscription(value: unknown): AudioTranscription | null {
  if (!isRecord(value)) return null;
  return {
    ...(typeof value.model === "string" ? { model: value.model } : {}),
    ...(typeof value.language === "string" ? { language: value.language } : {}),
    ...(typeof value.prompt === "string" ? { prompt: value.prompt } : {}),
  };
}

function parseTurnDetection(value: unknown): TurnDetection | null | string {
  if (value === null) return null;
  if (!isRecord(value)) return "Invalid 'turn_detection': expected an object or null.";
  const flags = {
    ...(typeof value.create_response === "boolean" ? { create_response: value.create_response } : {}),
    ...(typeof value.interrupt_response === "boolean" ? { interrupt_response: value.interrupt_response } : {}),
  };
  if (value.type === "semantic_vad") return { type: "semantic_vad", ...flags };
  if (value.type !== "server_vad" && value.type !== undefined) {
    return "Invalid 'turn_detection.type': expected server_vad or semantic_vad.";
  }
  return {
    ...DEFAULT_TURN_DETECTION,
    ...flags,
    ...(typeof value.silence_duration_ms === "number" ? { silence_duration_ms: value.silence_duration_ms } : {}),
    ...(typeof value.threshold === "number" ? { threshold: value.threshold } : {}),
    ...(typeof value.prefix_padding_ms === "number" ? { prefix_padding_ms: value.prefix_padding_ms } : {}),
  };
}

function isFunctionTool(value: unknown): value is RealtimeFunctionTool {
  return isRecord(value) && value.type === "function" && typeof value.name === "string";
}
