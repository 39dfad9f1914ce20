import { ConfigurationError, type ProviderName, parseSettings } from "../../workers/config/settings";
import { connectDeepgramAgent } from "./deepgram-agent";
import { connectGeminiLive } from "./gemini-live";
import { connectLocalEngine } from "./local-engine";
import { connectOpenAiRealtime } from "./openai-realtime";
import type { ProviderEventHandler, ProviderSessionConfig, VoiceProvider } from "./provider";

/** Where each provider is dialled and with which key, from settings (so tests and local runs use simulators). */
const ENDPOINTS = {
  openai: { url: "OPENAI_REALTIME_URL", key: "OPENAI_API_KEY" },
  gemini: { url: "GEMINI_LIVE_URL", key: "GEMINI_API_KEY" },
  deepgram: { url: "DEEPGRAM_AGENT_URL", key: "DEEPGRAM_API_KEY" },
} as const;

/** True when the provider can be dialled with this deployment's settings (`local` always can). */
export function providerConfigured(env: object, provider: ProviderName): boolean {
  if (provider === "local") return true;
  const values = parseSettings(env).values;
  return values[ENDPOINTS[provider].url] !== undefined && values[ENDPOINTS[provider].key] !== undefined;
}

/** Opens and configures a session with `provider`; rejects when it refuses, fails setup, or is not configured. */
export function connectProvider(
  env: object,
  provider: ProviderName,
  onEvent: ProviderEventHandler,
  config: ProviderSessionConfig,
): Promise<VoiceProvider> {
  if (provider === "local") return connectLocalEngine({ onEvent }, config);
  const values = parseSettings(env).values;
  const { url: urlSetting, key: keySetting } = ENDPOINTS[provider];
  const url = values[urlSetting];
  const apiKey = values[keySetting];
  if (!url || !apiKey) {
    const missing = !url ? urlSetting : keySetting;
    return Promise.reject(new ConfigurationError([{ setting: missing, problem: "is missing" }]));
  }
  const options = { url, apiKey, onEvent };
  if (provider === "openai") return connectOpenAiRealtime(options, config);
  if (provider === "gemini") return connectGeminiLive(options, config);
  return connectDeepgramAgent(options, config);
}
