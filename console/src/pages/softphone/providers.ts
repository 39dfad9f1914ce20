import type { ProviderName } from "../../../../workers/shared/provider-names.ts";

/** The voice AI providers a call may ask for, with the names people know them by. */
export const PROVIDERS = [
  { name: "openai", label: "OpenAI" },
  { name: "gemini", label: "Gemini" },
  { name: "deepgram", label: "Deepgram" },
  { name: "local", label: "Local engine" },
] as const satisfies ReadonlyArray<{ name: ProviderName; label: string }>;

export function providerLabel(name: ProviderName | null): string {
  return PROVIDERS.find((provider) => provider.name === name)?.label ?? "unknown";
}
