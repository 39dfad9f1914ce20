import { and, eq, inArray } from "drizzle-orm";
import { reasonOf } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { metrics } from "../observability/metrics.ts";
import type { ProviderName } from "../settings.ts";
import { database } from "./client.ts";
import { currentVersionFields, currentVersionJoin, type PromptRef } from "./prompts.ts";
import { type Carrier, calls, phoneNumbers, prompts, promptVersions, type RecordingMode, reminders } from "./schema.ts";

/**
 * Cross-tenant lookups that carrier webhooks need before they know the tenant: number → tenant and carrier call →
 * session. Two tiers: KV first (fast, eventually consistent), D1 on a miss (the truth); losing KV loses nothing.
 */
const TTL_SECONDS = 3600;
const NEGATIVE_TTL_SECONDS = 60;

export interface NumberRoute {
  tenantId: string;
  numberId: string;
  carrier: Carrier;
  provider: ProviderName | null;
  /** The number's prompt's current version when the route was read (cached with it; prompt moves drop the cache). */
  instructions: string | null;
  prompt: PromptRef | null;
  codec: "PCMU" | "PCMA";
  /** The number's own recording setting (null: the tenant's). Absent in routes cached before it existed. */
  recording?: RecordingMode | null;
}

/** What a call to the number starts with, as the call's object takes it (`openCall`'s `route`). */
export function callRouteOf(number: NumberRoute) {
  return {
    provider: number.provider,
    instructions: number.instructions,
    prompt: number.prompt ?? null,
    codec: number.codec,
    recording: number.recording ?? null,
  };
}

const numberKey = (e164: string) => `number:${e164}`;
const callKey = (carrier: Carrier, carrierCallId: string) => `carrier-call:${carrier}:${carrierCallId}`;

async function cached<T>(env: Env, kind: "number" | "carrier_call", key: string, load: () => Promise<T | null>): Promise<T | null> {
  try {
    const hit = await env.CACHE.get<{ value: T | null }>(key, "json");
    metrics.count("cache_requests_total", { tier: "kv", kind, result: hit ? "hit" : "miss" });
    if (hit) return hit.value;
  } catch {
    // KV unavailable: D1 answers.
    metrics.count("cache_requests_total", { tier: "kv", kind, result: "error" });
  }
  const value = await load();
  try {
    await env.CACHE.put(key, JSON.stringify({ value }), { expirationTtl: value ? TTL_SECONDS : NEGATIVE_TTL_SECONDS });
  } catch {
    // A cache write failure only costs the next lookup a D1 read.
  }
  return value;
}

export function routeForNumber(env: Env, e164: string): Promise<NumberRoute | null> {
  return cached(env, "number", numberKey(e164), async () => {
    // The number's prompt rides the same query (same tenant only), so a prompt costs the answering path no round trip.
    const [row] = await database(env.DB)
      .select({ number: phoneNumbers, prompt: currentVersionFields })
      .from(phoneNumbers)
      .leftJoin(prompts, and(eq(prompts.id, phoneNumbers.promptId), eq(prompts.tenantId, phoneNumbers.tenantId)))
      .leftJoin(promptVersions, currentVersionJoin)
      .where(eq(phoneNumbers.e164, e164))
      .limit(1);
    if (!row) return null;
    const { number, prompt } = row;
    return {
      tenantId: number.tenantId,
      numberId: number.id,
      carrier: number.carrier,
      provider: number.provider,
      instructions: prompt?.instructions ?? number.instructions,
      prompt:
        prompt?.id && prompt.version !== null ? { id: prompt.id, version: prompt.version, voice: prompt.voice, tools: prompt.tools } : null,
      codec: number.codec,
      recording: number.recording,
    };
  });
}

/**
 * Drops the number's cached route after its row changed in D1. Never throws: the change is committed, and a KV
 * failure must not answer it with an error (a retry would then collide with it). What it can leave is a stale route
 * for at most its TTL, so the failure is logged for an operator.
 */
export async function forgetNumber(env: Env, log: Logger, e164: string): Promise<void> {
  try {
    await env.CACHE.delete(numberKey(e164));
  } catch (error) {
    log.warn("directory.forget_number_failed", { reason: reasonOf(error), staleForSeconds: TTL_SECONDS });
  }
}

export function sessionForCarrierCall(
  env: Env,
  carrier: Carrier,
  carrierCallId: string,
): Promise<{ sessionId: string; tenantId: string } | null> {
  return cached(env, "carrier_call", callKey(carrier, carrierCallId), async () => {
    const [row] = await database(env.DB)
      .select({ sessionId: calls.sessionId, tenantId: calls.tenantId })
      .from(calls)
      .where(and(eq(calls.carrier, carrier), eq(calls.carrierCallId, carrierCallId)))
      .limit(1);
    return row ?? null;
  });
}

/** Drops a carrier call's cached route (a privacy erasure removes the call it points at). */
export async function forgetCarrierCall(env: Env, carrier: Carrier, carrierCallId: string): Promise<void> {
  await env.CACHE.delete(callKey(carrier, carrierCallId));
}

/** Written by the call's object once its call row is durable in D1. */
export async function rememberCarrierCall(
  env: Env,
  carrier: Carrier,
  carrierCallId: string,
  route: { sessionId: string; tenantId: string },
) {
  await env.CACHE.put(callKey(carrier, carrierCallId), JSON.stringify({ value: route }), { expirationTtl: TTL_SECONDS * 24 });
}

/**
 * The WhatsApp reminders Meta's receipts are about, whichever tenant's: the deployment sends every tenant's WhatsApp
 * from its one number, so a receipt names no tenant, only Meta's message id, which is unique and only Meta knows.
 */
export function whatsappRemindersSentAs(
  env: Env,
  messageIds: string[],
): Promise<Array<{ tenantId: string; reminderId: string; messageId: string | null }>> {
  return database(env.DB)
    .select({ tenantId: reminders.tenantId, reminderId: reminders.id, messageId: reminders.externalId })
    .from(reminders)
    .where(and(inArray(reminders.externalId, messageIds), eq(reminders.channel, "whatsapp")));
}
