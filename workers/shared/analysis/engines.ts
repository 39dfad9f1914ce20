import { z } from "zod";
import { metrics } from "../observability/metrics.ts";
import type { Settings } from "../settings.ts";
import { analyseLocally } from "./local-engine.ts";
import { ANALYSIS_JSON_SCHEMA, type AnalysisLine, type AnalysisResult, analysisResultSchema } from "./result.ts";

/**
 * The analysis engines behind one call: `local` (offline, local-engine.ts) or a text model with structured output —
 * OpenAI's Responses API with `text.format` json_schema, Gemini's generateContent with a response schema. A model
 * failure (network, status, a refusal, an answer that is not the schema) throws `AnalysisFailure` with a short
 * reason, which the runner stores and retries; tokens the model reports are counted even when its answer is refused.
 */

export type AnalysisEngine = "openai" | "gemini" | "local";

export const ANALYSIS_MODELS: Record<AnalysisEngine, string> = {
  openai: "gpt-4o-mini",
  gemini: "gemini-2.0-flash",
  local: "local-lexicon-v1",
};
const MODEL_TIMEOUT_MS = 30_000;
const INSTRUCTIONS =
  "You analyse the transcript of a customer's phone or web call with an AI voice agent, as the JSON schema asks. " +
  "Sentiment is the caller's. Action items are what either side promised or was asked to do. Do not invent facts.";

export class AnalysisFailure extends Error {
  /** What a model that did answer (outside the schema) was paid for all the same. */
  constructor(
    message: string,
    readonly tokens: { input: number; output: number } = { input: 0, output: 0 },
  ) {
    super(message);
  }
}

export interface EngineAnswer {
  result: AnalysisResult;
  model: string;
  tokens: { input: number; output: number };
}

type EngineSettings = Pick<Settings, "ANALYSIS_PROVIDER" | "OPENAI_API_KEY" | "OPENAI_API_BASE" | "GEMINI_API_KEY" | "GEMINI_API_BASE">;

/** The configured engine; unset, the first text model with a key, else the offline one (README Settings). */
export function analysisEngineOf(settings: EngineSettings): AnalysisEngine {
  if (settings.ANALYSIS_PROVIDER) return settings.ANALYSIS_PROVIDER;
  if (settings.OPENAI_API_KEY) return "openai";
  return settings.GEMINI_API_KEY ? "gemini" : "local";
}

export async function runEngine(engine: AnalysisEngine, settings: EngineSettings, lines: AnalysisLine[]): Promise<EngineAnswer> {
  if (engine === "local") return { result: analyseLocally(lines), model: ANALYSIS_MODELS.local, tokens: { input: 0, output: 0 } };
  const key = engine === "openai" ? settings.OPENAI_API_KEY : settings.GEMINI_API_KEY;
  // Chosen explicitly without its key: nothing to retry until the deployment is fixed, and no silent fallback.
  if (!key) throw new AnalysisFailure(`${engine}_not_configured`);
  const transcript = transcriptText(lines);
  const answer =
    engine === "openai"
      ? await askOpenAi(settings.OPENAI_API_BASE, key, transcript)
      : await askGemini(settings.GEMINI_API_BASE, key, transcript);
  metrics.count("llm_tokens_total", { provider: engine, kind: "input" }, answer.tokens.input);
  metrics.count("llm_tokens_total", { provider: engine, kind: "output" }, answer.tokens.output);
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(answer.text ?? "");
  } catch {
    // Left null: reported below as an answer that is not the schema.
  }
  const result = analysisResultSchema.safeParse(parsed);
  if (!result.success) throw new AnalysisFailure(`${engine} answered outside the schema`, answer.tokens);
  return { result: result.data, model: answer.model, tokens: answer.tokens };
}

/** What a text model reads: one line per turn, `caller:` or `agent:`. */
export function transcriptText(lines: AnalysisLine[]): string {
  return lines.map((line) => `${line.role}: ${line.text}${line.interrupted ? " [interrupted]" : ""}`).join("\n");
}

interface ModelAnswer {
  text: string | undefined;
  model: string;
  tokens: { input: number; output: number };
}

async function post(url: string, headers: Record<string, string>, body: unknown, engine: string): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(MODEL_TIMEOUT_MS),
    });
  } catch (error) {
    throw new AnalysisFailure(`${engine} unreachable (${error instanceof Error ? error.name : "error"})`);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new AnalysisFailure(`${engine} answered ${response.status}`);
  }
  return response.json().catch(() => null);
}

const openAiResponse = z.object({
  model: z.string().optional(),
  output: z.array(
    z.looseObject({ type: z.string(), content: z.array(z.looseObject({ type: z.string(), text: z.string().optional() })).optional() }),
  ),
  usage: z.object({ input_tokens: z.number().int().min(0), output_tokens: z.number().int().min(0) }).optional(),
});

async function askOpenAi(base: string, key: string, transcript: string): Promise<ModelAnswer> {
  const body = await post(
    `${base.replace(/\/$/, "")}/v1/responses`,
    { Authorization: `Bearer ${key}` },
    {
      model: ANALYSIS_MODELS.openai,
      instructions: INSTRUCTIONS,
      input: [{ role: "user", content: transcript }],
      text: { format: { type: "json_schema", name: "call_analysis", strict: true, schema: ANALYSIS_JSON_SCHEMA } },
      store: false,
    },
    "openai",
  );
  const parsed = openAiResponse.safeParse(body);
  if (!parsed.success) throw new AnalysisFailure("openai answered an unknown shape");
  const part = parsed.data.output.flatMap((item) => item.content ?? []).find((content) => content.type === "output_text");
  return {
    text: part?.text,
    model: parsed.data.model ?? ANALYSIS_MODELS.openai,
    tokens: { input: parsed.data.usage?.input_tokens ?? 0, output: parsed.data.usage?.output_tokens ?? 0 },
  };
}

const geminiResponse = z.object({
  candidates: z.array(z.object({ content: z.object({ parts: z.array(z.object({ text: z.string().optional() })) }).optional() })).optional(),
  usageMetadata: z
    .object({ promptTokenCount: z.number().int().min(0).optional(), candidatesTokenCount: z.number().int().min(0).optional() })
    .optional(),
  modelVersion: z.string().optional(),
});

async function askGemini(base: string, key: string, transcript: string): Promise<ModelAnswer> {
  const body = await post(
    `${base.replace(/\/$/, "")}/v1beta/models/${ANALYSIS_MODELS.gemini}:generateContent`,
    { "x-goog-api-key": key },
    {
      systemInstruction: { parts: [{ text: INSTRUCTIONS }] },
      contents: [{ role: "user", parts: [{ text: transcript }] }],
      generationConfig: { responseMimeType: "application/json", responseSchema: geminiSchema(ANALYSIS_JSON_SCHEMA) },
    },
    "gemini",
  );
  const parsed = geminiResponse.safeParse(body);
  if (!parsed.success) throw new AnalysisFailure("gemini answered an unknown shape");
  return {
    text: parsed.data.candidates?.[0]?.content?.parts.map((part) => part.text ?? "").join(""),
    model: parsed.data.modelVersion ?? ANALYSIS_MODELS.gemini,
    tokens: { input: parsed.data.usageMetadata?.promptTokenCount ?? 0, output: parsed.data.usageMetadata?.candidatesTokenCount ?? 0 },
  };
}

type JsonSchema = { type: string | readonly string[]; [key: string]: unknown };

/**
 * Gemini's `responseSchema` is an OpenAPI subset: upper-case types, `nullable` instead of a type list, and no
 * `additionalProperties`; the same schema is translated rather than written twice.
 */
function geminiSchema(schema: JsonSchema): Record<string, unknown> {
  const types = typeof schema.type === "string" ? [schema.type] : [...schema.type];
  const out: Record<string, unknown> = { type: types.find((type) => type !== "null")!.toUpperCase() };
  if (types.includes("null")) out.nullable = true;
  if (schema.enum) out.enum = schema.enum;
  if (schema.description) out.description = schema.description;
  if (schema.items) out.items = geminiSchema(schema.items as JsonSchema);
  if (schema.properties) {
    const properties = schema.properties as Record<string, JsonSchema>;
    out.properties = Object.fromEntries(Object.entries(properties).map(([name, value]) => [name, geminiSchema(value)]));
    out.required = schema.required;
  }
  return out;
}
