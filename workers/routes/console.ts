import { Hono } from "hono";
import type { AppEnv } from "../http/context.ts";

/**
 * The web console (console/, a static single-page app) at `/` and under `/console/`. Its files come from the
 * Workers static-assets binding; a page path that names no file (a deep link such as /console/sessions/abc) gets
 * the app's index.html, so a reload anywhere lands in the app. Hashed build files under /console/assets/ never reach
 * the Worker (wrangler.toml `run_worker_first`). Its security headers are set in http/security-headers.ts.
 */
const INDEX = "/console/index.html";

export const consoleRoutes = new Hono<AppEnv>();

consoleRoutes.get("/", (c) => serveIndex(c.env, c.req.raw));
consoleRoutes.get("/console", (c) => serveIndex(c.env, c.req.raw));
consoleRoutes.get("/console/*", async (c) => {
  const asset = await c.env.ASSETS.fetch(c.req.raw);
  if (asset.status !== 404 || looksLikeFile(c.req.path)) return withHeaders(asset);
  return serveIndex(c.env, c.req.raw);
});

/** A path whose last segment has an extension names a file: a missing one is a 404, not the app. */
function looksLikeFile(path: string): boolean {
  const last = path.slice(path.lastIndexOf("/") + 1);
  return /\.[a-z0-9]+$/i.test(last);
}

async function serveIndex(env: Env, request: Request): Promise<Response> {
  const index = await env.ASSETS.fetch(new Request(new URL(INDEX, request.url), { headers: request.headers }));
  // The assets service already marks HTML `max-age=0, must-revalidate`: the index is never cached past a deploy.
  return withHeaders(index);
}

/** Asset responses are immutable; a copy takes the middleware's headers. */
function withHeaders(response: Response): Response {
  return new Response(response.body, response);
}
