import {
  createExecutionContext,
  createScheduledController,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import type { CallSession } from "../../../durable-objects/call-session.ts";
import worker from "../../../workers/index.ts";
import { RECONCILE_MAX_ATTEMPTS } from "../../../workers/scheduled.ts";
import {
  appliedMoves,
  type CallDetail,
  callByCarrierId,
  callDetail,
  openTwilioCall,
  tenantWithNumbers,
  twilioStatus,
} from "../support/calls.ts";
import {
  closeCodeOf,
  endTelnyxCallAtCarrier,
  endTwilioCallAtCarrier,
  eventually,
  openTelnyxMedia,
  openTwilioMedia,
  postTelnyx,
  randomCallControlId,
  randomE164,
  simRequests,
  telnyxEnvelope,
  twilioStart,
} from "../support/carriers.ts";
import { api } from "../support/identity.ts";
import { watchStorage } from "../support/storage-writes.ts";

/**
 * Calls outlive the things that fail under them: the call's object being evicted mid-call (a deploy, memory
 * pressure), D1 being unavailable, and a carrier's final webhook that never arrives (the reconcile cron).
 */
let token: string;
let tenantId: string;
let twilioNumber: string;
let telnyxNumber: string;

beforeAll(async () => {
  const fixture = await tenantWithNumbers([{ carrier: "twilio" }, { carrier: "telnyx" }]);
  token = fixture.token;
  tenantId = fixture.tenantId;
  [twilioNumber, telnyxNumber] = fixture.numbers as [string, string];
});

const stubOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));
const dtmf = (digit: string) =>
  JSON.stringify({ event: "dtmf", sequenceNumber: "9", streamSid: "MZ1", dtmf: { track: "inbound_track", digit } });
const mediaLines = (call: CallDetail) => call.events.filter((e) => e.event.startsWith("media.")).map((e) => `${e.event}:${e.detail}`);

async function historyWith(carrierCallId: string, line: string) {
  return eventually(async () => {
    const call = await callByCarrierId(token, carrierCallId);
    return mediaLines(call).includes(line) && call;
  });
}

async function acceptedSocket(response: Response) {
  expect(response.status).toBe(101);
  const socket = response.webSocket!;
  socket.accept();
  return socket;
}

describe("eviction of the call's object mid-call", () => {
  it("Twilio: after a restart that drops the stream, Twilio's reconnect re-attaches and later callbacks still apply", async () => {
    const call = await openTwilioCall(twilioNumber);
    const first = await acceptedSocket(await openTwilioMedia(call.streamUrl));
    first.send(twilioStart(call.callSid, call.mediaToken));
    first.send(dtmf("1"));
    await historyWith(call.callSid, "media.dtmf:1");

    // A deploy restarts the object and drops its sockets; Twilio reconnects to the same stream URL with the same token.
    // (The carrier's stream is a plain socket — see media-sockets.ts — so it is dropped, not hibernated.)
    const firstClosed = closeCodeOf(first);
    first.close(1001, "going away");
    await firstClosed;
    await evictDurableObject(stubOf(call.sessionId));
    const second = await acceptedSocket(await openTwilioMedia(call.streamUrl));
    const secondClosed = closeCodeOf(second);
    second.send(twilioStart(call.callSid, call.mediaToken));
    second.send(dtmf("2"));
    await historyWith(call.callSid, "media.dtmf:2");

    expect((await twilioStatus(call.callSid, twilioNumber, "completed", { sequence: 3 })).status).toBe(204);
    // The call's end closes the carrier stream it holds.
    expect(await secondClosed).toBe(1000);
    const done = await callByCarrierId(token, call.callSid);
    expect(done.status).toBe("completed");
    expect(mediaLines(done)).toEqual(["media.start:pcmu", "media.dtmf:1", "media.start:pcmu", "media.dtmf:2"]);
    expect(done.events.map((e) => e.seq)).toEqual(done.events.map((_, i) => i + 1));
  });

  it("Telnyx: after eviction the path token still opens the stream, webhooks apply, and the call is not answered twice", async () => {
    const callControlId = randomCallControlId();
    await postTelnyx(
      telnyxEnvelope("call.initiated", {
        call_control_id: callControlId,
        direction: "incoming",
        from: "+14155550100",
        to: telnyxNumber,
        state: "parked",
      }),
    );
    const answer = await eventually(
      async () => (await simRequests({ carrier: "telnyx", callId: callControlId, path: "/actions/answer" }))[0],
    );
    const streamUrl = (answer.body as { stream_url: string }).stream_url;
    const { sessionId } = await callByCarrierId(token, callControlId);
    const clientState = btoa(JSON.stringify({ s: sessionId }));

    await evictDurableObject(stubOf(sessionId));
    expect((await postTelnyx(telnyxEnvelope("call.answered", { call_control_id: callControlId, client_state: clientState }))).status).toBe(
      200,
    );
    await evictDurableObject(stubOf(sessionId), { webSockets: "close" });
    const socket = await acceptedSocket(await openTelnyxMedia(streamUrl));
    socket.send(
      JSON.stringify({
        event: "start",
        sequence_number: "1",
        stream_id: "s1",
        start: { call_control_id: callControlId, media_format: { encoding: "PCMU", sample_rate: 8000, channels: 1 } },
      }),
    );
    await historyWith(callControlId, "media.start:pcmu");
    expect(
      (
        await postTelnyx(
          telnyxEnvelope("call.hangup", { call_control_id: callControlId, client_state: clientState, hangup_cause: "normal_clearing" }),
        )
      ).status,
    ).toBe(200);
    // The stream closes without a `stop`: the call, ended by the hangup, is torn down then and its end drained to D1.
    socket.close(1000, "done");

    const done = await eventually(async () => {
      const found = await callByCarrierId(token, callControlId);
      return found.status === "completed" && found;
    });
    expect(appliedMoves(done.events)).toEqual(["initiated", "in_progress", "completed"]);
    expect(await simRequests({ carrier: "telnyx", callId: callControlId, path: "/actions/answer" })).toHaveLength(1);
  });
});

describe("D1 outage", () => {
  it("callbacks are accepted while D1 is down, kept in the object, and reach D1 in order once it is back", async () => {
    const call = await openTwilioCall(twilioNumber);
    const stub = stubOf(call.sessionId);
    const d1Status = async () =>
      (await env.DB.prepare("SELECT status FROM calls WHERE carrier_call_id = ?").bind(call.callSid).first<{ status: string }>())?.status;
    expect(await d1Status()).toBe("ringing");

    // A real failure of the real batch: the history table is gone, so the call's one-transaction sync fails whole.
    await env.DB.exec("ALTER TABLE call_events RENAME TO call_events_offline");
    try {
      expect((await twilioStatus(call.callSid, twilioNumber, "in-progress", { sequence: 2 })).status).toBe(204);
      expect((await twilioStatus(call.callSid, twilioNumber, "completed", { sequence: 3 })).status).toBe(204);
      expect(await d1Status()).toBe("ringing");
      const held = await runInDurableObject(stub, async (_instance, state) => ({
        outbox: state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n,
        alarm: await state.storage.getAlarm(),
      }));
      expect(held.outbox).toBeGreaterThanOrEqual(2);
      expect(held.alarm).not.toBeNull();
    } finally {
      await env.DB.exec("ALTER TABLE call_events_offline RENAME TO call_events");
    }

    // The retry (the object's alarm) drains the outbox; it may already have run on its own.
    await runDurableObjectAlarm(stub);
    const synced = await eventually(async () => (await d1Status()) === "completed" && callByCarrierId(token, call.callSid));
    expect(appliedMoves(synced.events)).toEqual(["initiated", "ringing", "in_progress", "completed"]);
    expect(synced.events.map((e) => e.seq)).toEqual(synced.events.map((_, i) => i + 1));
    const outbox = await runInDurableObject(
      stub,
      (_instance, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n,
    );
    expect(outbox).toBe(0);
  });
});

describe("the outbox's acknowledgements", () => {
  const d1Status = (callSid: string) => async () =>
    (await env.DB.prepare("SELECT status FROM calls WHERE carrier_call_id = ?").bind(callSid).first<{ status: string }>())?.status;
  const storedOutbox = (stub: DurableObjectStub<CallSession>) =>
    runInDurableObject(stub, (_instance, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n);

  it("ride on the call's next write instead of a commit of their own, and an ended call's go at once", async () => {
    const call = await openTwilioCall(twilioNumber);
    const stub = stubOf(call.sessionId);
    await eventually(async () => (await d1Status(call.callSid)()) === "ringing");
    const watched = await watchStorage(call.sessionId);
    try {
      expect((await twilioStatus(call.callSid, twilioNumber, "in-progress", { sequence: 2 })).status).toBe(204);
      await eventually(async () => (await d1Status(call.callSid)()) === "in_progress");
      // What D1 took at the ring was deleted by this callback's own write of the record, in its commit.
      const deletes = watched.writes.filter((write) => write.what === "DELETE FROM outbox");
      expect(deletes.length).toBeGreaterThanOrEqual(1);
      for (const write of deletes) expect(write.stack).toMatch(/\bsave\b/);
      // What D1 took since is acknowledged (nothing waits for it) but still stored, until the next write.
      expect((await stub.pendingSync()).events).toBe(0);
      expect(await storedOutbox(stub)).toBeGreaterThanOrEqual(1);

      // An ended call writes little more: its last entries are deleted as soon as D1 has them.
      expect((await twilioStatus(call.callSid, twilioNumber, "completed", { sequence: 3 })).status).toBe(204);
      await eventually(async () => (await d1Status(call.callSid)()) === "completed");
      await eventually(async () => (await storedOutbox(stub)) === 0);
    } finally {
      watched.restore();
    }
    const done = await callByCarrierId(token, call.callSid);
    expect(appliedMoves(done.events)).toEqual(["initiated", "ringing", "in_progress", "completed"]);
  });

  it("lost to an eviction, the acknowledged entries are sent again and D1 keeps one of each, in order", async () => {
    const call = await openTwilioCall(twilioNumber);
    const stub = stubOf(call.sessionId);
    await eventually(async () => (await d1Status(call.callSid)()) === "ringing");
    expect(await storedOutbox(stub)).toBeGreaterThanOrEqual(1);
    await evictDurableObject(stub);

    // The new instance does not know they were acknowledged: its first drain sends them again with the new ones.
    expect((await twilioStatus(call.callSid, twilioNumber, "completed", { sequence: 2 })).status).toBe(204);
    const done = await eventually(async () => (await d1Status(call.callSid)()) === "completed" && callByCarrierId(token, call.callSid));
    expect(appliedMoves(done.events)).toEqual(["initiated", "ringing", "completed"]);
    expect(done.events.map((event) => event.seq)).toEqual(done.events.map((_, i) => i + 1));
    await eventually(async () => (await storedOutbox(stub)) === 0);
  });
});

describe("the reconcile cron", () => {
  async function placeTwilio(answer: boolean) {
    const to = randomE164();
    const response = await api("/api/v1/calls", { method: "POST", token, body: { to, carrier: "twilio" } });
    expect(response.status).toBe(201);
    const { id, sessionId } = (await response.json()) as { id: string; sessionId: string };
    const callSid = (await callDetail(token, id)).carrierCallId!;
    if (answer) await twilioStatus(callSid, to, "in-progress", { sequence: 2, sessionId });
    return { id, callSid };
  }

  /** Pretends the call has had no news for two hours (the cron looks for calls stuck longer than one). */
  const age = (id: string) => env.DB.prepare("UPDATE calls SET updated_at = updated_at - 7200000 WHERE id = ?").bind(id).run();

  it("asks each stuck call's carrier and finalises the calls that ended; live and recent calls are left alone", async () => {
    const answeredThenLost = await placeTwilio(true);
    await endTwilioCallAtCarrier(answeredThenLost.callSid, "completed");
    const canceled = await placeTwilio(false);
    await endTwilioCallAtCarrier(canceled.callSid, "canceled");
    const stillLive = await placeTwilio(true);
    const recent = await placeTwilio(true);
    await endTwilioCallAtCarrier(recent.callSid, "completed");

    const telnyxId = randomCallControlId();
    await postTelnyx(
      telnyxEnvelope("call.initiated", {
        call_control_id: telnyxId,
        direction: "incoming",
        from: "+14155550100",
        to: telnyxNumber,
        state: "parked",
      }),
    );
    await eventually(async () => (await simRequests({ carrier: "telnyx", callId: telnyxId, path: "/actions/answer" }))[0]);
    const telnyx = await callByCarrierId(token, telnyxId);
    await postTelnyx(
      telnyxEnvelope("call.answered", { call_control_id: telnyxId, client_state: btoa(JSON.stringify({ s: telnyx.sessionId })) }),
    );
    await endTelnyxCallAtCarrier(telnyxId);

    for (const id of [answeredThenLost.id, canceled.id, stillLive.id, telnyx.id]) await age(id);
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "*/5 * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);

    const outcome = async (id: string) => {
      const call = await callDetail(token, id);
      return {
        status: call.status,
        failureReason: call.failureReason,
        byReconcile: call.events.some((e) => e.source === "system" && e.event === "reconcile.ended"),
      };
    };
    expect(await outcome(answeredThenLost.id)).toEqual({ status: "completed", failureReason: null, byReconcile: true });
    expect(await outcome(canceled.id)).toEqual({ status: "failed", failureReason: "canceled", byReconcile: true });
    expect(await outcome(telnyx.id)).toEqual({ status: "completed", failureReason: null, byReconcile: true });
    expect(await outcome(stillLive.id)).toEqual({ status: "in_progress", failureReason: null, byReconcile: false });
    expect(await outcome(recent.id)).toEqual({ status: "in_progress", failureReason: null, byReconcile: false });

    // The carriers were asked (Twilio fetch call, Telnyx call status) about the stuck calls only.
    const fetched = async (callSid: string) =>
      (await simRequests({ carrier: "twilio", callId: callSid })).filter((r) => r.method === "GET").length;
    expect(await fetched(answeredThenLost.callSid)).toBe(1);
    expect(await fetched(stillLive.callSid)).toBe(1);
    expect(await fetched(recent.callSid)).toBe(0);
    expect(
      (await simRequests({ carrier: "telnyx", callId: telnyxId })).filter((r) => r.method === "GET" && r.path === `/v2/calls/${telnyxId}`),
    ).toHaveLength(1);
  });

  /** Runs the cron as wrangler would. */
  async function runCron() {
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "*/5 * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
  }

  it("calls it cannot settle wait their turn with backoff, so they never starve the rest, and are given up on at last", async () => {
    // 100 live rows older than any real call whose objects know nothing of them (storage lost, a bad restore): the
    // cron can never settle them, and they are exactly one batch.
    const longAgo = Date.now() - 30 * 24 * 60 * 60_000;
    const orphans = Array.from({ length: 100 }, (_, i) => ({ id: `orphan-${crypto.randomUUID()}`, at: longAgo + i }));
    await env.DB.batch(
      orphans.map(({ id, at }) =>
        env.DB.prepare(
          `INSERT INTO calls (id, tenant_id, session_id, carrier, carrier_call_id, direction, from_number, to_number, status,
             created_at, updated_at) VALUES (?, ?, ?, 'twilio', ?, 'outbound', '+14155550100', '+14155550101', 'in_progress', ?, ?)`,
        ).bind(id, tenantId, `sess-${id}`, `CA${id}`, at, at),
      ),
    );
    const lost = await placeTwilio(true);
    await endTwilioCallAtCarrier(lost.callSid, "completed");
    await age(lost.id);

    await runCron();
    expect((await callDetail(token, lost.id)).status).toBe("in_progress");
    const marks = await env.DB.prepare(
      "SELECT attempts, next_attempt_at AS next, outcome FROM call_reconcile WHERE call_id LIKE 'orphan-%'",
    ).all<{
      attempts: number;
      next: number;
      outcome: string;
    }>();
    expect(marks.results).toHaveLength(100);
    for (const mark of marks.results) {
      expect(mark).toMatchObject({ attempts: 1, outcome: "unknown" });
      expect(mark.next).toBeGreaterThan(Date.now());
    }

    // The next run skips the orphans (not due yet) and reaches the call whose end was lost.
    await runCron();
    expect(await callDetail(token, lost.id)).toMatchObject({ status: "completed" });

    // An orphan at its last attempt is marked given up and never asked again.
    const last = orphans[0]!.id;
    await env.DB.prepare("UPDATE call_reconcile SET attempts = ?, next_attempt_at = 0 WHERE call_id = ?")
      .bind(RECONCILE_MAX_ATTEMPTS - 1, last)
      .run();
    await runCron();
    const givenUp = () =>
      env.DB.prepare("SELECT attempts, next_attempt_at AS next, outcome FROM call_reconcile WHERE call_id = ?").bind(last).first();
    expect(await givenUp()).toEqual({ attempts: RECONCILE_MAX_ATTEMPTS, next: null, outcome: "gave_up:unknown" });
    await runCron();
    expect(await givenUp()).toEqual({ attempts: RECONCILE_MAX_ATTEMPTS, next: null, outcome: "gave_up:unknown" });
  });
});
