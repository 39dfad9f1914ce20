import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { z } from "zod";
import { type Reply, startHttpServer } from "../carriers/http.ts";

/**
 * The WhatsApp Cloud API's send endpoint, OpenAI's Responses API (text intents, post-call analysis) and Gemini's
 * generateContent (post-call analysis) on one local HTTP server, checking credentials and payload shapes as the real
 * services do. `/__sim/...` lets tests read what was sent and script the
 * text models: a message text the test scripted gets that JSON as either model's answer; any other text gets a 503, as
 * a model outage would (the platform then falls back to its offline parser, or retries an analysis).
 */
export interface WhatsAppSimulatorOptions {
  accessToken: string;
  phoneNumberId: string;
  openAiKey: string;
  geminiKey: string;
}

export interface WhatsAppSimulator {
  /** WHATSAPP_API_BASE and OPENAI_API_BASE for the platform; `/__sim` lives here too. */
  url: string;
  stop(): Promise<void>;
}

export interface SentMessage {
  id: string;
  to: string;
  body: string;
}

export interface RecordedModelRequest {
  text: string;
  body: unknown;
  scripted: boolean;
}

const sendSchema = z.object({
  messaging_product: z.literal("whatsapp"),
  recipient_type: z.literal("individual").optional(),
  to: z.string().regex(/^\d{6,15}$/),
  type: z.literal("text"),
  text: z.object({ body: z.string().min(1).max(4096), preview_url: z.boolean().optional() }),
});

const responsesSchema = z.object({
  model: z.string().min(1),
  instructions: z.string().optional(),
  input: z.array(z.object({ role: z.enum(["user", "system", "developer", "assistant"]), content: z.string() })).min(1),
  text: z.object({
    format: z.object({
      type: z.literal("json_schema"),
      name: z.string().regex(/^[\w-]{1,64}$/),
      strict: z.boolean().optional(),
      schema: z.record(z.string(), z.unknown()),
    }),
  }),
});

/** generateContent with structured output (JSON out, by a response schema). */
const generateContentSchema = z.object({
  systemInstruction: z.object({ parts: z.array(z.object({ text: z.string() })) }).optional(),
  contents: z.array(z.object({ role: z.enum(["user", "model"]), parts: z.array(z.object({ text: z.string() })).min(1) })).min(1),
  generationConfig: z.object({
    responseMimeType: z.literal("application/json"),
    responseSchema: z.object({ type: z.enum(["OBJECT", "object"]) }).loose(),
  }),
});

const scriptSchema = z.object({
  text: z.string().min(1),
  output: z.unknown(),
  usage: z.object({ input: z.number(), output: z.number() }).optional(),
});

export async function startWhatsAppSimulator(options: WhatsAppSimulatorOptions): Promise<WhatsAppSimulator> {
  const sent: SentMessage[] = [];
  const modelRequests: RecordedModelRequest[] = [];
  const scripts = new Map<string, { output: unknown; usage: { input: number; output: number } }>();

  const handle = async (request: IncomingMessage, raw: string): Promise<Reply> => {
    const url = new URL(request.url ?? "/", "http://sim");
    const bearer = request.headers.authorization;
    if (request.method === "POST" && url.pathname === `/v21.0/${options.phoneNumberId}/messages`) {
      if (bearer !== `Bearer ${options.accessToken}`) return graphError(401, 190, "Invalid OAuth access token.");
      const parsed = sendSchema.safeParse(safeJson(raw));
      if (!parsed.success) return graphError(400, 100, "Invalid parameter");
      const id = `wamid.SIM${randomBytes(12).toString("hex")}`;
      sent.push({ id, to: parsed.data.to, body: parsed.data.text.body });
      return {
        status: 200,
        body: { messaging_product: "whatsapp", contacts: [{ input: parsed.data.to, wa_id: parsed.data.to }], messages: [{ id }] },
      };
    }
    if (request.method === "POST" && url.pathname.endsWith("/messages")) return graphError(400, 100, "Unknown phone number id");
    if (request.method === "POST" && url.pathname === "/v1/responses") {
      if (bearer !== `Bearer ${options.openAiKey}`)
        return { status: 401, body: { error: { message: "Incorrect API key provided", type: "invalid_request_error" } } };
      const parsed = responsesSchema.safeParse(safeJson(raw));
      if (!parsed.success) return { status: 400, body: { error: { message: parsed.error.message, type: "invalid_request_error" } } };
      const text = parsed.data.input.findLast((item) => item.role === "user")?.content ?? "";
      const script = scripts.get(text);
      modelRequests.push({ text, body: parsed.data, scripted: script !== undefined });
      if (!script) return { status: 503, body: { error: { message: "The server is overloaded", type: "server_error" } } };
      return { status: 200, body: modelResponse(parsed.data.model, JSON.stringify(script.output), script.usage) };
    }
    const gemini = request.method === "POST" ? /^\/v1beta\/models\/([\w.-]+):generateContent$/.exec(url.pathname) : null;
    if (gemini) {
      if (request.headers["x-goog-api-key"] !== options.geminiKey && url.searchParams.get("key") !== options.geminiKey)
        return {
          status: 400,
          body: { error: { code: 400, message: "API key not valid. Please pass a valid API key.", status: "INVALID_ARGUMENT" } },
        };
      const parsed = generateContentSchema.safeParse(safeJson(raw));
      if (!parsed.success)
        return { status: 400, body: { error: { code: 400, message: parsed.error.message, status: "INVALID_ARGUMENT" } } };
      const text =
        parsed.data.contents
          .findLast((item) => item.role === "user")
          ?.parts.map((part) => part.text)
          .join("") ?? "";
      const script = scripts.get(text);
      modelRequests.push({ text, body: parsed.data, scripted: script !== undefined });
      if (!script) return { status: 503, body: { error: { code: 503, message: "The model is overloaded.", status: "UNAVAILABLE" } } };
      return { status: 200, body: geminiResponse(gemini[1]!, JSON.stringify(script.output), script.usage) };
    }
    if (request.method === "GET" && url.pathname === "/__sim/whatsapp/messages") {
      const to = url.searchParams.get("to");
      return { status: 200, body: { messages: sent.filter((message) => to === null || message.to === to) } };
    }
    if (request.method === "POST" && url.pathname === "/__sim/openai/scripts") {
      const parsed = scriptSchema.safeParse(safeJson(raw));
      if (!parsed.success) return { status: 400, body: { error: parsed.error.message } };
      scripts.set(parsed.data.text, { output: parsed.data.output, usage: parsed.data.usage ?? { input: 120, output: 30 } });
      return { status: 204 };
    }
    if (request.method === "GET" && url.pathname === "/__sim/openai/requests") {
      const text = url.searchParams.get("text");
      return { status: 200, body: { requests: modelRequests.filter((entry) => text === null || entry.text === text) } };
    }
    return { status: 404, body: { error: "not found" } };
  };

  const server = await startHttpServer(handle);
  return { url: server.url, stop: () => server.close() };
}

function graphError(status: number, code: number, message: string): Reply {
  return { status, body: { error: { message, type: "OAuthException", code, fbtrace_id: randomBytes(8).toString("hex") } } };
}

function modelResponse(model: string, text: string, usage: { input: number; output: number }) {
  return {
    id: `resp_${randomBytes(12).toString("hex")}`,
    object: "response",
    created_at: Math.floor(Date.now() / 1000),
    status: "completed",
    model,
    output: [
      {
        type: "message",
        id: `msg_${randomBytes(12).toString("hex")}`,
        status: "completed",
        role: "assistant",
        content: [{ type: "output_text", text, annotations: [] }],
      },
    ],
    usage: {
      input_tokens: usage.input,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: usage.output,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: usage.input + usage.output,
    },
  };
}

function geminiResponse(model: string, text: string, usage: { input: number; output: number }) {
  return {
    candidates: [{ content: { role: "model", parts: [{ text }] }, finishReason: "STOP", index: 0 }],
    usageMetadata: { promptTokenCount: usage.input, candidatesTokenCount: usage.output, totalTokenCount: usage.input + usage.output },
    modelVersion: model,
    responseId: randomBytes(12).toString("hex"),
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
