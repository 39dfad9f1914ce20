import { requireSettings } from "../shared/settings.ts";

/**
 * The origins every URL handed to a carrier is built on, from PUBLIC_BASE_URL: carriers sign and call the public
 * address, never the (proxied) request's. Each carrier builds its own paths on them.
 */
export function publicOrigin(env: object): { https: string; wss: string } {
  const base = new URL(requireSettings(env, "publicUrls").PUBLIC_BASE_URL);
  return { https: `${base.protocol}//${base.host}`, wss: `${base.protocol === "https:" ? "wss:" : "ws:"}//${base.host}` };
}
