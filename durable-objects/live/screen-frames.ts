import { z } from "zod";
import { MAX_SCREEN_FRAME_BYTES, SCREEN_MIME_TYPES, type ScreenMimeType } from "../../workers/shared/live-protocol.ts";
import type { ImageFrame } from "../voice/providers/provider.ts";

/** A web caller's screen, at most one frame a second (the rate the realtime models sample video at). */
export const MAX_SCREEN_FRAMES_PER_SECOND = 1;

/**
 * Standard base64 with its padding: what a data URI (OpenAI) and an inline blob (Gemini) both take as it is. One
 * character-class run and a length check, so a 256 KiB frame costs one linear scan.
 */
const BASE64_CHARACTERS = /^[A-Za-z0-9+/]+={0,2}$/;
const isBase64 = (data: string) => data.length % 4 === 0 && BASE64_CHARACTERS.test(data);

export const screenFrameSchema = z
  .object({
    type: z.literal("screen"),
    mimeType: z.enum(SCREEN_MIME_TYPES),
    data: z.string().min(12).max(MAX_SCREEN_FRAME_BYTES).refine(isBase64),
  })
  .strict();

/** The first bytes of each image type: a frame whose bytes are not the image it names is refused, never forwarded. */
const SIGNATURES: Record<ScreenMimeType, readonly number[]> = {
  "image/jpeg": [0xff, 0xd8, 0xff],
  "image/png": [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
};

/** The frame as an image for the provider, or why it is refused. Decodes only the first few bytes (no copy of the image). */
export function screenImage(message: unknown): ImageFrame | string {
  const result = screenFrameSchema.safeParse(message);
  if (!result.success) return "Malformed screen frame: mimeType image/jpeg or image/png, data base64";
  const { mimeType, data } = result.data;
  const head = atob(data.slice(0, 12));
  const signature = SIGNATURES[mimeType];
  if (!signature.every((byte, index) => head.charCodeAt(index) === byte)) return `The screen frame's data is not ${mimeType}`;
  return { mimeType, base64: data };
}
