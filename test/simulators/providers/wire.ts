import { randomBytes } from "node:crypto";
import type { RawData } from "ws";

/** Small helpers for reading client frames, shared by the three provider sessions. */

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function rawDataBytes(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Parses a frame as a JSON object; undefined when it is not one (the caller answers as its provider would). */
export function parseJsonObject(data: RawData): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(rawDataBytes(data).toString("utf8"));
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (Buffer.from would silently skip garbage). */
export function decodeBase64(value: unknown): Buffer | undefined {
  return typeof value === "string" && BASE64.test(value) ? Buffer.from(value, "base64") : undefined;
}

/** An id in the provider's style: `prefix` + random base62-ish characters. */
export function providerId(prefix: string, length = 20): string {
  return prefix + randomBytes(length).toString("base64url").replace(/[-_]/g, "x").slice(0, length);
}
