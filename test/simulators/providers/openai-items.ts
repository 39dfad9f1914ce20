import type { ConversationItem } from "openai/resources/realtime/realtime";
import { decodeBase64, isRecord } from "./wire.ts";

/** Conversation items as OpenAI Realtime stores them: every stored item has an id. */
export type StoredItem = ConversationItem & { id: string };

/**
 * The item of a client's `conversation.item.create`, normalised to what the service echoes back in
 * `conversation.item.added`; a string is the error message for the client.
 */
export function parseClientItem(raw: Record<string, unknown>, id: string): StoredItem | string {
  const base = { id, object: "realtime.item", status: "completed" } as const;
  if (raw.type === "function_call_output") {
    if (typeof raw.call_id !== "string" || typeof raw.output !== "string") {
      return "Missing required parameter: 'item.call_id' or 'item.output'.";
    }
    return { ...base, type: "function_call_output", call_id: raw.call_id, output: raw.output };
  }
  if (raw.type === "function_call") {
    if (typeof raw.call_id !== "string" || typeof raw.name !== "string") {
      return "Missing required parameter: 'item.call_id' or 'item.name'.";
    }
    const args = typeof raw.arguments === "string" ? raw.arguments : "{}";
    return { ...base, type: "function_call", call_id: raw.call_id, name: raw.name, arguments: args };
  }
  if (raw.type !== "message" || !Array.isArray(raw.content)) {
    return "Invalid 'item': expected a message, function_call or function_call_output item.";
  }
  const parts = raw.content.filter(isRecord);
  const images = parts.filter((part) => part.type === "input_image");
  if (images.length > 0 && (raw.role !== "user" || images.some((part) => typeof imageOf(part) === "string"))) {
    return "Invalid 'item.content': input_image needs a user message and a PNG or JPEG data URI in image_url.";
  }
  const texts = parts.map((part) => {
    if (typeof part.text === "string") return part.text;
    return typeof part.transcript === "string" ? part.transcript : "";
  });
  const message = { ...base, type: "message" } as const;
  if (raw.role === "assistant") {
    return { ...message, role: "assistant", content: texts.map((text) => ({ type: "output_text", text })) };
  }
  const content = texts.map((text) => ({ type: "input_text" as const, text }));
  if (raw.role === "user") {
    const imageParts = images.map((part) => ({ type: "input_image" as const, image_url: String(part.image_url) }));
    return { ...message, role: "user", content: imageParts.length ? [...content.filter((part) => part.text), ...imageParts] : content };
  }
  if (raw.role === "system") return { ...message, role: "system", content };
  return "Invalid 'item.role': expected user, assistant or system.";
}

/** An `input_image` part's image (its type and decoded bytes), or why the service would refuse it. */
export function imageOf(part: Record<string, unknown>): { mimeType: string; bytes: Buffer } | string {
  const uri = typeof part.image_url === "string" ? /^data:(image\/(?:jpeg|png));base64,(.*)$/.exec(part.image_url) : null;
  const bytes = uri ? decodeBase64(uri[2]) : undefined;
  if (!uri || !bytes || bytes.byteLength === 0) return "image_url is not a PNG or JPEG data URI";
  return { mimeType: uri[1]!, bytes };
}
