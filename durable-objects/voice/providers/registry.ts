import { PROVIDER_ENDPOINTS } from "../../../workers/shared/provider-endpoints.ts";
import { ConfigurationError, type ProviderName, parseSettings, type Settings } from "../../../workers/shared/settings.ts";
import { connectDeepgramAgent } from "./deepgram/agent.ts";
import { connectGeminiLive } from "./gemini/live.ts";
import { connectLocalEngine } from "./local/engine.ts";
import { connectOpenAiRealtime } from "./openai/realtime.ts";
import type { ProviderConnectOptions, ProviderEventHandler, ProviderSessionConfig, VoiceProvider } from "./provider.ts";

type NetworkProvider = Exclude<ProviderName, "local">;
type Connect = (options: ProviderConnectOptions, config: ProviderSessionConfig, settings: Settings) => Promise<VoiceProvider>;

/**
 * Every provider reached over the network, by name: one folder each (`providers/<name>/`), each dialled with its
 * URL and key from settings (`PROVIDER_ENDPOINTS`). A provider's own settings (OpenAI's session lifetime) are read
 * here and handed to its adapter, which owns what they mean.
 */
const NETWORK_PROVIDERS: Record<NetworkProvider, Connect> = {
  openai: (options, config, settings) =>
    connectOpenAiRealtime({ ...options, sessionLifetimeMs: settings.OPENAI_SESSION_ROLLOVER_MINUTES * 60_000 }, config),
  gemini: (options, config) => connectGeminiLive(options, config),
  deepgram: (options, config) => connectDeepgramAgent(options, config),
};

/**
 * Whether a provider's model takes images (a web caller's shared screen): OpenAI Realtime and Gemini Live do, and their
 * adapters have `sendImage`; Deepgram's Voice Agent and the offline engine do not. Known without a connection, so a
 * `/live` greeting can say it while the provider is still being dialled.
 */
export const ACCEPTS_IMAGES: Record<ProviderName, boolean> = { openai: true, gemini: true, deepgram: false, local: false };

/** Opens and configures a session with `provider`; rejects when it refuses, fails setup, or is not configured. */
export function connectProvider(
  env: object,
  provider: ProviderName,
  onEvent: ProviderEventHandler,
  config: ProviderSessionConfig,
): Promise<VoiceProvider> {
  // The offline engine needs no URL, key or network.
  if (provider === "local") return connectLocalEngine({ onEvent }, config);
  const settings = parseSettings(env).values;
  const { url: urlSetting, key: keySetting } = PROVIDER_ENDPOINTS[provider];
  const url = settings[urlSetting];
  const apiKey = settings[keySetting];
  if (!url || !apiKey) {
    const missing = !url ? urlSetting : keySetting;
    return Promise.reject(new ConfigurationError([{ setting: missing, problem: "is missing" }]));
  }
  return NETWORK_PROVIDERS[provider]({ url, apiKey, onEvent }, config, settings);
}
