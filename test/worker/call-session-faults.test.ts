import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { OUTBOX_BOUNDS } from "../../durable-objects/call/outbox-backlog.ts";
import type { CallSession } from "../../durable-objects/call-session.ts";
import { openTwilioCall, twilioStatus } from "./support/calls.ts";
import { closeCodeOf, eventually } from "./support/carriers.ts";
import { api } from "./support/identity.ts";
import { openStream, type TwilioMediaCaller, transcriptOf, twilioCallWith } from "./support/media-caller.ts";
import { putScenario, simulatorConnections, uniqueKey } from "./support/provider-simulator.ts";

/**
 * The fault suite: a call through the real Worker and its object while the things under it fail — D1 for part of the
 * call and for all of it, a provider that accepts and then stalls, the carrier's stream dropping and coming back, the
 * object evicted mid-call. Whatever failed, each test ends the same way: once D1 is back, the call's record, its
 * history and its transcript are complete in D1, in order, with nothing written twice.
 */

const stubOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));

/** Every table a call's durable record lives in. */
const RECORD_TABLES = ["sessions", "calls", "call_events", "transcript_lines", "provider_switches"];

/** D1 refuses every statement on the call's tables (a real failure of every real batch), until `d1Back`. */
async function d1Down(): Promise<void> {
  await env.DB.batch(RECORD_TABLES.map((table) => env.DB.prepare(`ALTER TABLE ${table} RENAME TO ${table}_offline`)));
}
async function d1Back(): Promise<void> {
  await env.DB.batch(RECORD_TABLES.map((table) => env.DB.prepare(`ALTER TABLE ${table}_offline RENAME TO ${table}`)));
}

/** The registry of provider health is shared by the file: a provider stalled in one test is not offline in the next. */
beforeEach(async () => {
  const registry = env.PROVIDER_HEALTH.get(env.PROVIDER_HEALTH.idFromName("global"));
  await runInDurableObject(registry, async (_instance, state) => {
    state.storage.sql.exec("DELETE FROM health_outcomes");
    state.storage.sql.exec("DELETE FROM health_providers");
    await state.storage.deleteAlarm();
  });
});

/** One caller turn, answered: the agent's audio reaches the caller while the line carries silence. */
async function converse(caller: TwilioMediaCaller, utterance: "hello" | "invoice" | "payment" = "hello") {
  const before = caller.agentAudioBytes();
  const answered = () => caller.agentAudioBytes() >= before + 4_000;
  await caller.say(utterance);
  await caller.silence(600);
  for (let i = 0; i < 50 && !answered() && caller.closeCode === null; i++) await caller.silence(200);
  await caller.until(answered);
}

async function dropStream(caller: TwilioMediaCaller): Promise<void> {
  const closed = closeCodeOf(caller.socket);
  caller.close();
  await closed;
}

/** What the call's object holds: its last history seq and transcript seq (the truth D1 must catch up with). */
async function objectHolds(sessionId: string) {
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
async function expectCompleteInD1(token: string, sessionId: string, options = { transcript: true }) {
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
async function hangUp(call: { callSid: string; number: string }) {
  expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 9 })).status).toBe(204);
}

describe("D1 unavailable", () => {
  it("during a call: the call goes on, and once D1 is back its record, history and transcript are complete", async () => {
    const call = await twilioCallWith("local", uniqueKey("d1-mid"), "Greet the caller. Then listen.");
    const caller = await openStream(call);
    await converse(caller);
    await d1Down();
    try {
      await converse(caller, "invoice");
      await hangUp(call);
    } finally {
      await d1Back();
    }
    await expectCompleteInD1(call.token, call.sessionId);
  });

  it("for the call's whole length, from its first webhook to its last", async () => {
    // The number's route is in KV already (an earlier call looked it up), as it is for any number that takes calls.
    const earlier = await twilioCallWith("local", uniqueKey("d1-warm"), "Greet the caller. Then listen.");
    await d1Down();
    let call: Awaited<ReturnType<typeof twilioCallWith>>;
    try {
      call = { ...earlier, ...(await openTwilioCall(earlier.number)) };
      const caller = await openStream(call);
      await converse(caller);
      await converse(caller, "payment");
      await hangUp(call);
    } finally {
      await d1Back();
    }
    await expectCompleteInD1(call.token, call.sessionId);
  });
});

describe("a backlog past its bound while D1 is down", () => {
  it("is counted and kept whole in the object, said so, and drained to D1 in steps once D1 is back", async () => {
    const call = await twilioCallWith("local", uniqueKey("d1-backlog"), "Listen.");
    const caller = await openStream(call);
    await caller.silence(200);
    await d1Down();
    const presses = OUTBOX_BOUNDS.events + 20;
    try {
      // Every key press is a line of the call's history: more of them than the outbox's bound.
      for (let i = 0; i < presses; i++) caller.dtmf(String(i % 10));
      await caller.silence(200);
      const pending = await eventually(async () => {
        const sync = await runInDurableObject(stubOf(call.sessionId), (instance: CallSession) => instance.pendingSync());
        return sync.events > OUTBOX_BOUNDS.events && sync;
      });
      expect(pending.overBound).toEqual(["events"]);
      await hangUp(call);
    } finally {
      await d1Back();
    }
    // One wake-up sends at most DRAIN_BATCHES_PER_WAKE batches of 50, not the whole backlog.
    await runDurableObjectAlarm(stubOf(call.sessionId));
    const afterOneWake = await runInDurableObject(stubOf(call.sessionId), (instance: CallSession) => instance.pendingSync());
    expect(afterOneWake.events).toBeGreaterThan(0);
    expect(afterOneWake.overBound).toEqual([]);
    await expectCompleteInD1(call.token, call.sessionId, { transcript: false });
    const dtmfEvents = await env.DB.prepare(
      "SELECT count(*) AS n FROM call_events WHERE event = 'media.dtmf' AND call_id IN (SELECT id FROM calls WHERE session_id = ?)",
    )
      .bind(call.sessionId)
      .first<{ n: number }>();
    expect(dtmfEvents?.n).toBe(presses);
  });
});

describe("a provider that accepts, then stalls", () => {
  it("the object reconnects, the call goes on, and the record is complete with no line twice", async () => {
    const key = uniqueKey("fault-stall");
    // session.created and session.updated, then silence: the session is up but never answers.
    await putScenario(key, { stallAfterMessages: 2, replies: ["Sorry for the wait."], callerTranscripts: ["Are you there?"] });
    const call = await twilioCallWith("openai", key);
    await eventually(async () => (await simulatorConnections(key)).length === 1);
    await putScenario(key, { replies: ["Sorry for the wait."], callerTranscripts: ["Are you there?"] });
    const caller = await openStream(call);
    await caller.silence(200);
    caller.dtmf("1");
    await eventually(async () => (await simulatorConnections(key)).length === 2, 250);
    await converse(caller);
    // The caller listens to the end of the answer (its text arrives after its audio) before hanging up.
    await transcriptOf(call.token, call.sessionId, (lines) => lines.some((line) => line.role === "agent"));
    await hangUp(call);
    await expectCompleteInD1(call.token, call.sessionId);
  });
});

describe("the carrier's stream drops and comes back", () => {
  it("the reconnected stream carries the call on and the record is complete", async () => {
    const call = await twilioCallWith("local", uniqueKey("fault-drop"), "Greet the caller. Then listen.");
    const first = await openStream(call);
    await converse(first);
    await dropStream(first);
    const second = await openStream(call);
    await converse(second, "invoice");
    await hangUp(call);
    await expectCompleteInD1(call.token, call.sessionId);
  });
});

describe("the call's object evicted mid-call", () => {
  it("the fresh instance carries the call on from its storage and the record is complete", async () => {
    const call = await twilioCallWith("local", uniqueKey("fault-evict"), "Greet the caller. Then listen.");
    const first = await openStream(call);
    await converse(first);
    await dropStream(first);
    await evictDurableObject(stubOf(call.sessionId));
    const second = await openStream(call);
    await converse(second, "payment");
    await hangUp(call);
    await expectCompleteInD1(call.token, call.sessionId);
  });
});
