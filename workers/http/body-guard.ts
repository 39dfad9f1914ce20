import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { AppError } from "../shared/errors.ts";
import type { AppEnv } from "./context.ts";

const JSON_TYPE = /^application\/([a-z.+-]+\+)?json(\s*;.*)?$/i;

/** REST bodies are small JSON documents: anything larger is refused before it is read. */
export const MAX_API_BODY_BYTES = 64 * 1024;

const limit = bodyLimit({
  maxSize: MAX_API_BODY_BYTES,
  onError: () => {
    throw new AppError(413, "payload_too_large", `Request body exceeds ${MAX_API_BODY_BYTES} bytes`, "payload");
  },
});

/** A request that carries a body must say it is JSON; a body-less POST (logout, hangup) is fine. */
export const jsonBodyGuard: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === "GET" || c.req.method === "HEAD" || c.req.method === "OPTIONS") return next();
  const length = c.req.header("content-length");
  const hasBody = (length !== undefined && length !== "0") || c.req.header("transfer-encoding") !== undefined;
  if (hasBody && !JSON_TYPE.test(c.req.header("content-type") ?? "")) {
    throw new AppError(415, "unsupported_media_type", "Request body must be application/json", "payload");
  }
  return limit(c, next);
};
