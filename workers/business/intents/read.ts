import { cachedIntent, intentCacheKey, storeIntent } from "./cache.ts";
import type { Intent } from "./intent.ts";
import { type ModelContext, modelIntent } from "./model.ts";
import { parseIntent } from "./parser.ts";

export interface IntentReading {
  intent: Intent;
  source: "model" | "cache" | "parser";
}

/**
 * A message's intent: from the cache, else the text model when the platform has an OpenAI key, else (or when the
 * model fails) the offline parser. Only the model's readings are cached: the parser is cheaper than a cache lookup.
 */
export async function readIntent(
  env: { CACHE: KVNamespace },
  model: { OPENAI_API_BASE: string; OPENAI_API_KEY: string | undefined },
  tenantId: string,
  text: string,
  context: ModelContext,
): Promise<IntentReading> {
  const apiKey = model.OPENAI_API_KEY;
  if (!apiKey) return { intent: parseIntent(text, context), source: "parser" };
  const localDate = new Intl.DateTimeFormat("en-CA", { timeZone: context.timezone }).format(context.now);
  const key = await intentCacheKey({ tenantId, text, localDate, lastCustomer: context.lastCustomer });
  const cached = await cachedIntent(env.CACHE, key, context.now);
  if (cached) return { intent: cached, source: "cache" };
  const intent = await modelIntent({ OPENAI_API_BASE: model.OPENAI_API_BASE, OPENAI_API_KEY: apiKey }, text, context);
  if (!intent) return { intent: parseIntent(text, context), source: "parser" };
  await storeIntent(env.CACHE, key, intent, context.now);
  return { intent, source: "model" };
}
