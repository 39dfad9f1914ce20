import { BusinessCache } from "../cache.ts";
import { intentCacheKey } from "./cache.ts";
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
  const key = await intentCacheKey({ text, localDate, lastCustomer: context.lastCustomer });
  let asked = false;
  const intent = await new BusinessCache(env.CACHE, tenantId)
    .read("intent", key, async () => {
      asked = true;
      const reading = await modelIntent({ OPENAI_API_BASE: model.OPENAI_API_BASE, OPENAI_API_KEY: apiKey }, text, context);
      // No reading: nothing is cached (a thrown loader stores nothing), and the parser answers this once.
      if (!reading) throw new ModelUnavailable();
      return reading;
    })
    .catch((error: unknown) => {
      if (error instanceof ModelUnavailable) return null;
      throw error;
    });
  if (!intent) return { intent: parseIntent(text, context), source: "parser" };
  return { intent, source: asked ? "model" : "cache" };
}

class ModelUnavailable extends Error {}
