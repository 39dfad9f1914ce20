import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { twilioStatus } from "./calls.ts";
import { closeCodeOf, eventually } from "./carriers.ts";
import { api } from "./identity.ts";
import type { TwilioMediaCaller } from "./media-caller.ts";

/**
 * What the fault suites share (call-session-faults.test.ts, and its KV-down twin in the worker-kv-down project): D1
 * taken away and given back, a caller's turn, and the ending every fault test checks once its fault is over.
 */

export const stubOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));

/** Every table a call's durable record lives in. */
const RECORD_TABLES = ["sessions", "calls", "call_events", "transcript_lines", "provider_switches"];

/** D1 refuses every statement on the call's tables (a real failure of every real batch), until `d1Back`. */
export async function d1Down(): Promise<void> {
  await env.DB.batch(RECORD_TABLES.map((table) => env.DB.prepare(`ALTER TABLE ${table} RENAME TO ${table}_offline`)));
}
export async function d1Back(): Promise<void> {
  await env.DB.batch(RECORD_TABLES.map((table) => env.DB.prepare(`ALTER TABLE ${table}_offline RENAME TO ${table}`)));
}

/** One caller turn, answered: the agent's audio reaches the caller while the line carries silence. */
export async function converse(caller: TwilioMediaCaller, utterance: "hello" | "invoice" | "payment" = "hello") {
  const before = caller.agentAudioBytes();
  const answered = () => caller.agentAudioBytes() >= before + 4_000;
  await caller.say(utterance);
  await caller.silence(600);
  for (let i = 0; i < 50 && !answered() && caller.closeCode === null; i++) await caller.silence(200);
  await caller.until(answered);
}

export async function dropStream(caller: TwilioMediaCaller): Promise<void> {
  const closed = closeCodeOf(caller.socket);
  caller.close();
  await closed;
}

/** What the call's object holds: its last history seq and transcript seq (the truth D1 must catch up with). */
export async function objectHolds(sessionId: string) {
  return runInDurableObject(stubOf(sessionId), (_instance, state) => {
    const record = JSON.parse(state.storage.sql.exec<{ body: string }>("SELECT body FROM call_record").one().body) as {
      eventSeq: number;
      status: string;
    };
    const lastLine = state.storage.sql.exec<{ seq: number | null }>("SELECT MAX(seq) AS seq FROM transcript_lines").one().seq ?? 0;
    return { eventSeq: record.eventSeq, status: record.status, lastLine };
  });
}

/**
 * The ending every test shares: the object's alarm drains what waited (as it would on its own, only sooner) until
 * nothing is pending, then D1 must hold the call ended, every history event once and in order (seq 1…n, n as the
 * object counts), every transcript line once and in order, and the session ended.
 */
export async function expectCompleteInD1(token: string, sessionId: string, options = { transcript: true }) {
  await eventually(async () => {
    await runDurableObjectAlarm(stubOf(sessionId));
    const detail = (await (await api(`/api/v1/sessions/${sessionId}`, { token })).json()) as {
      pendingSync: { events: number; transcriptLines: number; switches: number } | null;
    };
    const pending = detail.pendingSync;
    return pending !== null && pending.events + pending.transcriptLines + pending.switches === 0;
  }, 60);
  const held = await objectHolds(sessionId);
  expect(held.status).toBe("completed");
  const call = await env.DB.prepare("SELECT id, status FROM calls WHERE session_id = ?")
    .bind(sessionId)
    .all<{ id: string; status: string }>();
  expect(call.results).toEqual([{ id: expect.any(String), status: "completed" }]);
  const events = await env.DB.prepare("SELECT seq FROM call_events WHERE call_id = ? ORDER BY seq")
    .bind(call.results[0]!.id)
    .all<{ seq: number }>();
  expect(events.results.map((e) => e.seq)).toEqual(Array.from({ length: held.eventSeq }, (_, i) => i + 1));
  const lines = await env.DB.prepare("SELECT seq, role FROM transcript_lines WHERE session_id = ? ORDER BY seq").bind(sessionId).all<{
    seq: number;
    role: string;
  }>();
  expect(lines.results.map((l) => l.seq)).toEqual(Array.from({ length: held.lastLine }, (_, i) => i + 1));
  if (options.transcript) {
    expect(lines.results.some((l) => l.role === "caller")).toBe(true);
    expect(lines.results.some((l) => l.role === "agent")).toBe(true);
  }
  const session = await env.DB.prepare("SELECT status FROM sessions WHERE id = ?").bind(sessionId).first<{ status: string }>();
  expect(session?.status).toBe("ended");
}

/** The caller hangs up: Twilio's final status callback (204 even while D1 is down: the object holds it). */
export async function hangUp(call: { callSid: string; number: string }) {
  expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 9 })).status).toBe(204);
}

/** How many key presses of the session's call reached D1's history. */
export async function dtmfEventsInD1(sessionId: string): Promise<number> {
  const row = await env.DB.prepare(
    "SELECT count(*) AS n FROM call_events WHERE event = 'media.dtmf' AND call_id IN (SELECT id FROM calls WHERE session_id = ?)",
  )
    .bind(sessionId)
    .first<{ n: number }>();
  return row?.n ?? 0;
}
