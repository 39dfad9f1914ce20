import { PROVIDER_ENDPOINTS } from "../../workers/shared/provider-endpoints.ts";
import { ConfigurationError, type ProviderName, parseSettings } from "../../workers/shared/settings.ts";
import { connectDeepgramAgent } from "./deepgram-agent.ts";
import { connectGeminiLive } from "./gemini-live.ts";
import { connectLocalEngine } from "./local-engine.ts";
import { connectOpenAiRealtime } from "./openai-realtime.ts";
import type { ProviderEventHandler, ProviderSessionConfig, VoiceProvider } from "./provider.ts";

/** Opens and configures a session with `provider`; rejects when it refuses, fails setup, or is not configured. */
export function connectProvider(
  env: object,
  provider: ProviderName,
  onEvent: ProviderEventHandler,
  config: ProviderSessionConfig,
): Promise<VoiceProvider> {
  if (provider === "local") return connectLocalEngine({ onEvent }, config);
  const values = parseSettings(env).values;
  const { url: urlSetting, key: keySetting } = PROVIDER_ENDPOINTS[provider];
  const url = values[urlSetting];
  const apiKey = values[keySetting];
  if (!url || !apiKey) {
    const missing = !url ? urlSetting : keySetting;
    return Promise.reject(new ConfigurationError([{ setting: missing, problem: "is missing" }]));
  }
  const options = { url, apiKey, onEvent };
  if (provider === "openai") {
    return connectOpenAiRealtime({ ...options, sessionLifetimeMs: values.OPENAI_SESSION_ROLLOVER_MINUTES * 60_000 }, config);
  }
  if (provider === "gemini") return connectGeminiLive(options, config);
  return connectDeepgramAgent(options, config);
}
