import { type ProviderName, parseSettings } from "./settings.ts";

/** Where each provider is dialled and with which key, from settings (so tests and local runs use simulators). */
export const PROVIDER_ENDPOINTS = {
  openai: { url: "OPENAI_REALTIME_URL", key: "OPENAI_API_KEY" },
  gemini: { url: "GEMINI_LIVE_URL", key: "GEMINI_API_KEY" },
  deepgram: { url: "DEEPGRAM_AGENT_URL", key: "DEEPGRAM_API_KEY" },
} as const;

/** True when the provider can be dialled with this deployment's settings (`local` always can). */
export function providerConfigured(env: object, provider: ProviderName): boolean {
  if (provider === "local") return true;
  const values = parseSettings(env).values;
  return values[PROVIDER_ENDPOINTS[provider].url] !== undefined && values[PROVIDER_ENDPOINTS[provider].key] !== undefined;
}
