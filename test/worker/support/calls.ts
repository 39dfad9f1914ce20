import { runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import type { CallStatus } from "../../../workers/shared/db/schema.ts";
import { d1Count, parseStreamTwiml, postTwilio, randomCallSid, randomE164, twilioCallParams } from "./carriers.ts";
import { api, createTenant, userWithToken } from "./identity.ts";

/**
 * Call fixtures for the call tests: a tenant with numbers, inbound calls opened through the real webhooks, and the
 * call's record and history read back through the public API (what an operator would see).
 */
export type Carrier = "twilio" | "telnyx";

export interface CallEventView {
  seq: number;
  source: "carrier" | "api" | "system";
  event: string;
  fromStatus: CallStatus | null;
  toStatus: CallStatus | null;
  outcome: "applied" | "ignored" | "rejected";
  carrierSequence: number | null;
  detail: string | null;
}

export interface CallView {
  id: string;
  sessionId: string;
  carrier: Carrier;
  carrierCallId: string | null;
  direction: "inbound" | "outbound";
  from: string;
  to: string;
  status: CallStatus;
  failureReason: string | null;
  createdAt: string;
  answeredAt: string | null;
  endedAt: string | null;
  machineDetection: "hangup" | "voicemail" | null;
  answeredBy: "human" | "machine" | "fax" | "unknown" | null;
  machineOutcome: "agent" | "machine_hangup" | "voicemail_left" | null;
  voicemail: { chars: number; sha256: string } | null;
}

export type CallDetail = CallView & { events: CallEventView[] };

export async function tenantWithNumbers(
  specs: Array<{ carrier: Carrier; codec?: "PCMU" | "PCMA"; provider?: string; instructions?: string }>,
) {
  const tenantId = await createTenant();
  const admin = await userWithToken(tenantId, "admin");
  const numbers: string[] = [];
  for (const spec of specs) {
    const e164 = randomE164();
    const created = await api("/api/v1/phone-numbers", { method: "POST", token: admin.accessToken, body: { e164, ...spec } });
    expect(created.status).toBe(201);
    numbers.push(e164);
  }
  return { tenantId, admin, token: admin.accessToken, numbers };
}

export async function listCalls(token: string, query = ""): Promise<{ items: CallView[]; nextCursor: string | null }> {
  const response = await api(`/api/v1/calls${query}`, { token });
  expect(response.status).toBe(200);
  return response.json();
}

export async function callDetail(token: string, id: string): Promise<CallDetail> {
  const response = await api(`/api/v1/calls/${id}`, { token });
  expect(response.status).toBe(200);
  return response.json();
}

/** The call a carrier knows by `carrierCallId`, with its history (the tenant's list is small in these tests). */
export async function callByCarrierId(token: string, carrierCallId: string): Promise<CallDetail> {
  const { items } = await listCalls(token, "?limit=100");
  const call = items.find((item) => item.carrierCallId === carrierCallId);
  if (!call) throw new Error(`no call for ${carrierCallId}`);
  return callDetail(token, call.id);
}

/** Applied status moves, in order (what the call went through). */
export const appliedMoves = (events: CallEventView[]) =>
  events.filter((e) => e.outcome === "applied" && e.toStatus !== null).map((e) => e.toStatus);

/** A Twilio inbound call opened through the real voice webhook: the stream it was told to open, and its session. */
export async function openTwilioCall(number: string, status = "ringing") {
  const callSid = randomCallSid();
  const response = await postTwilio("/telephony/twilio/voice", twilioCallParams(callSid, number, status));
  expect(response.status).toBe(200);
  const stream = parseStreamTwiml(await response.text());
  const sessionId = stream.url.split("/").at(-1)!;
  return { callSid, sessionId, streamUrl: stream.url, mediaToken: stream.token };
}

/** Posts one Twilio status callback for a call; `token` becomes I-Twilio-Idempotency-Token when given. */
export function twilioStatus(
  callSid: string,
  to: string,
  status: string,
  options: { sequence?: number; token?: string; sessionId?: string; extra?: Record<string, string> } = {},
) {
  const path = `/telephony/twilio/status${options.sessionId ? `?sessionId=${options.sessionId}` : ""}`;
  const extra = { ...(options.sequence === undefined ? {} : { SequenceNumber: String(options.sequence) }), ...options.extra };
  return postTwilio(
    path,
    twilioCallParams(callSid, to, status, extra),
    options.token ? { headers: { "I-Twilio-Idempotency-Token": options.token } } : {},
  );
}

/** Row counts of everything a call leaves in D1: a rejected webhook must leave all three unchanged. */
export async function callTraces() {
  const [sessions, calls, events] = await Promise.all([
    d1Count("SELECT count(*) AS n FROM sessions"),
    d1Count("SELECT count(*) AS n FROM calls"),
    d1Count("SELECT count(*) AS n FROM call_events"),
  ]);
  return { sessions, calls, events };
}

/**
 * Moves a deadline a call's object keeps in its KV storage to the past, as if the time went by. Written through the
 * object's own KV (durable-objects/remembered-kv.ts), which remembers what it stored: written around it, the change
 * would be seen only by the object's next instance. (Evicting the object after writing around it was tried: the
 * Telnyx consent test, whose call has its provider socket open, then timed out.)
 */
export async function passStoredDeadline(stub: DurableObjectStub, key: string): Promise<void> {
  await runInDurableObject(stub, (instance) => (instance as unknown as { kv: SyncKvStorage }).kv.put(key, Date.now() - 1));
}
