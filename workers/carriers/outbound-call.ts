import { asc } from "drizzle-orm";
import { currentPrompt, promptRefOf, requirePrompt } from "../shared/db/prompts.ts";
import { CARRIERS, type Carrier, type MachineDetectionMode, phoneNumbers } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { badRequest, conflict } from "../shared/errors.ts";
import { callObject } from "../shared/session-ids.ts";
import { type ProviderName, parseSettings, requireSettings } from "../shared/settings.ts";

type PhoneRow = typeof phoneNumbers.$inferSelect;
type CallObject = ReturnType<typeof callObject>;
export type PlacedCall = Awaited<ReturnType<CallObject["placeCall"]>>;

export interface OutboundCallRequest {
  to: string;
  /** One of the tenant's numbers to call from; else one on `carrier` (default Twilio), else any configured carrier's. */
  from?: string;
  carrier?: Carrier;
  provider?: ProviderName;
  /** The agent's instructions for this call; absent, those of the number called from. */
  instructions?: string;
  /** The prompt to run (its current version); absent, the prompt of the number called from, if it has one. */
  promptId?: string;
  /** Answering-machine detection: what to do when a machine answers (absent: none, the agent talks to whoever answers). */
  machineDetection?: MachineDetectionMode;
  /** What a machine is told after its beep (`machineDetection: "voicemail"`). */
  voicemailMessage?: string;
  correlationId: string;
}

const configured = (env: Env, carrier: Carrier) => {
  try {
    requireSettings(env, carrier);
    return true;
  } catch {
    return false;
  }
};

/**
 * The carriers the tenant can reach out through, in order of preference, each with a caller id of the tenant's on it.
 * Shared by outbound calls and text messages, so both present the number the tenant chose (or its first).
 */
export async function callerIds(env: Env, scope: TenantScope, want: { from?: string; carrier?: Carrier } = {}) {
  const numbers = (await scope.select(phoneNumbers).orderBy(asc(phoneNumbers.e164))) as PhoneRow[];
  const chosen = want.from ? numbers.find((n) => n.e164 === want.from) : undefined;
  if (want.from && !chosen) throw badRequest("unknown_caller_id", "`from` is not one of this tenant's numbers");
  const preferred = chosen?.carrier ?? want.carrier ?? "twilio";
  const order: Carrier[] = [preferred, ...CARRIERS.filter((c) => c !== preferred)];
  const candidates = order.flatMap((carrier) => {
    const from = chosen?.carrier === carrier ? chosen.e164 : numbers.find((n) => n.carrier === carrier)?.e164;
    return from && configured(env, carrier) ? [{ carrier, from }] : [];
  });
  return { candidates, numberOf: (e164: string) => numbers.find((n) => n.e164 === e164) };
}

/**
 * Places an outbound call through the call's own object (which records it, takes an admission slot and fails over
 * between carriers): the one code path for `POST /api/v1/calls` and a reminder's call. 409 `no_caller_id` when the
 * tenant has no number on a configured carrier.
 */
export async function placeOutboundCall(
  env: Env,
  scope: TenantScope,
  request: OutboundCallRequest,
): Promise<{ sessionId: string; result: PlacedCall }> {
  const { candidates, numberOf } = await callerIds(env, scope, request);
  if (candidates.length === 0) throw conflict("no_caller_id", "The tenant has no number on a configured carrier to call from");
  const first = numberOf(candidates[0]!.from);
  const promptId = request.promptId ?? first?.promptId;
  // A prompt the request names must exist (422); one a number names and that is gone falls back to its instructions.
  const prompt = request.promptId
    ? await requirePrompt(env, scope, request.promptId)
    : promptId
      ? await currentPrompt(env, scope, promptId)
      : null;
  const sessionId = crypto.randomUUID();
  const result = await callObject(env, sessionId).placeCall({
    sessionId,
    tenantId: scope.tenantId,
    correlationId: request.correlationId,
    to: request.to,
    provider: request.provider ?? first?.provider ?? parseSettings(env).values.DEFAULT_PROVIDER ?? "local",
    instructions: prompt?.instructions ?? request.instructions ?? first?.instructions ?? null,
    prompt: prompt && promptRefOf(prompt),
    codec: first?.codec ?? "PCMU",
    candidates,
    machineDetection: request.machineDetection ? { mode: request.machineDetection, message: request.voicemailMessage ?? null } : null,
    // The number called from records (or not) as it would a call to it.
    recording: first?.recording ?? null,
  });
  return { sessionId, result };
}
