import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";
import { parseSettings } from "../shared/settings.ts";
import { isWebSocketUpgrade } from "../shared/websockets.ts";
import type { AppEnv } from "./context.ts";

/**
 * Security headers on every HTTP answer (hono's secureHeaders): nothing may frame the platform, sniff types or read
 * a referrer, and the API's JSON loads nothing (`default-src 'none'`). The interactive docs page needs its script
 * and styles, so its policy only forbids framing. WebSocket upgrades are left alone: their 101 carries no document.
 */
const apiHeaders = secureHeaders({
  contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
  referrerPolicy: "no-referrer",
  xFrameOptions: "DENY",
});
const docsHeaders = secureHeaders({ contentSecurityPolicy: { frameAncestors: ["'none'"] }, referrerPolicy: "no-referrer" });
/**
 * The web console's pages (routes/console.ts): its own scripts and styles only (Svelte sets some styles inline), its
 * own origin for API calls and `/live` sockets, images from screen captures (blob:/data:), no framing. The microphone
 * and screen capture are allowed for this origin only: the softphone needs them.
 */
const consoleHeaders = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'", "'unsafe-inline'"],
    imgSrc: ["'self'", "data:", "blob:"],
    mediaSrc: ["'self'", "blob:"],
    connectSrc: ["'self'"],
    objectSrc: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
  },
  permissionsPolicy: { microphone: ["self"], displayCapture: ["self"], camera: [] },
  referrerPolicy: "no-referrer",
  xFrameOptions: "DENY",
});

const isConsolePage = (path: string) => path === "/" || path === "/console" || path.startsWith("/console/");

export const securityHeaders: MiddlewareHandler<AppEnv> = (c, next) => {
  if (isWebSocketUpgrade(c.req.raw.headers)) return next();
  const path = c.req.path;
  return (path === "/docs" ? docsHeaders : isConsolePage(path) ? consoleHeaders : apiHeaders)(c, next);
};

/**
 * Cross-origin API calls only from the origins in CORS_ALLOWED_ORIGINS (none by default): a browser console on
 * another origin must be named; credentials travel in the Authorization header, never cookies.
 */
export const apiCors: MiddlewareHandler<AppEnv> = (c, next) => {
  const allowed = parseSettings(c.env).values.CORS_ALLOWED_ORIGINS;
  return cors({
    origin: (origin) => (allowed.includes(origin) ? origin : null),
    allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-ID"],
    allowMethods: ["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
    exposeHeaders: ["X-Correlation-ID"],
    maxAge: 600,
  })(c, next);
};
