import { z } from "zod";

/** The voice AI providers by name: settings, routes and the `/live` protocol (which the web console reads too) share them. */
const PROVIDERS = ["openai", "gemini", "deepgram", "local"] as const;
export const providerSchema = z.enum(PROVIDERS);
export type ProviderName = z.infer<typeof providerSchema>;
