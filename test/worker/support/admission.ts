import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { BUSY_MESSAGE } from "../../../workers/carriers/carrier.ts";
import { postTwilio, randomCallSid, twilioCallParams } from "./carriers.ts";

/** The tenant's admission object (durable-objects/admission/tenant-admission.ts). */
export const admissionOf = (tenantId: string) => env.TENANT_ADMISSION.get(env.TENANT_ADMISSION.idFromName(tenantId));

/** The sessions holding a slot, as the tenant's admission object has them. */
export function holders(tenantId: string): Promise<string[]> {
  return runInDurableObject(admissionOf(tenantId), (_object, state) =>
    state.storage.sql
      .exec<{ session_id: string }>("SELECT session_id FROM holders ORDER BY session_id")
      .toArray()
      .map((row) => row.session_id),
  );
}

/** A ringing Twilio call's voice webhook, and whether its TwiML admitted it (a stream) or turned it away (busy). */
export async function twilioVoice(number: string, callSid = randomCallSid()) {
  const response = await postTwilio("/telephony/twilio/voice", twilioCallParams(callSid, number, "ringing"));
  expect(response.status).toBe(200);
  const twiml = await response.text();
  const verdict = twiml.includes("<Connect><Stream") ? "admitted" : twiml.includes(BUSY_MESSAGE) ? "busy" : twiml;
  return { callSid, verdict, twiml, sessionId: /media\/([0-9a-f-]{36})/.exec(twiml)?.[1] };
}
