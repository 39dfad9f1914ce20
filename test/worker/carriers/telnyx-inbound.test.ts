import { beforeAll, describe, expect, it } from "vitest";
import { appliedMoves, callByCarrierId, callTraces, tenantWithNumbers } from "../support/calls.ts";
import {
  eventually,
  openTelnyxMedia,
  postTelnyx,
  randomCallControlId,
  randomE164,
  type SimRequest,
  simRequests,
  telnyxEnvelope,
} from "../support/carriers.ts";

/**
 * A Telnyx inbound call end to end through the real Worker, the call's object and the fake Telnyx API: the signed
 * call.initiated makes the object answer with bidirectional streaming, the media socket authenticates by its path
 * token, and Call Control webhooks drive the call to its end.
 */
let token: string;
let pcmuNumber: string;
let pcmaNumber: string;

beforeAll(async () => {
  const fixture = await tenantWithNumbers([{ carrier: "telnyx" }, { carrier: "telnyx", codec: "PCMA" }]);
  token = fixture.token;
  [pcmuNumber, pcmaNumber] = fixture.numbers as [string, string];
});

interface AnswerBody {
  command_id: string;
  client_state: string;
  stream_url: string;
  stream_track: string;
  stream_codec: string;
  stream_bidirectional_mode: string;
  stream_bidirectional_codec: string;
}

const clientStateOf = (sessionId: string) => btoa(JSON.stringify({ s: sessionId }));

async function initiate(to: string, callControlId = randomCallControlId(), eventId?: string) {
  const response = await postTelnyx(
    telnyxEnvelope(
      "call.initiated",
      { call_control_id: callControlId, direction: "incoming", from: "+14155550100", to, state: "parked" },
      eventId,
    ),
  );
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ received: true });
  return callControlId;
}

/** The answer command the call's object sent the fake Telnyx API (it is sent after the webhook is acknowledged). */
async function answerOf(callControlId: string): Promise<SimRequest & { body: AnswerBody }> {
  const answer = await eventually(
    async () => (await simRequests({ carrier: "telnyx", callId: callControlId, path: "/actions/answer" }))[0],
  );
  expect(answer).toMatchObject({ method: "POST", status: 200 });
  return answer as SimRequest & { body: AnswerBody };
}

/** A Call Control webhook for a call we answered: Telnyx echoes the client_state we set. */
function event(eventType: string, callControlId: string, sessionId: string | null, payload: Record<string, unknown> = {}) {
  return postTelnyx(
    telnyxEnvelope(eventType, {
      call_control_id: callControlId,
      ...(sessionId ? { client_state: clientStateOf(sessionId) } : {}),
      ...payload,
    }),
  );
}

function mediaFrames(callControlId: string, encoding: string) {
  const streamId = crypto.randomUUID();
  return [
    { event: "connected", version: "1.0.0" },
    {
      event: "start",
      sequence_number: "1",
      stream_id: streamId,
      start: { call_control_id: callControlId, client_state: "", media_format: { encoding, sample_rate: 8000, channels: 1 } },
    },
    {
      event: "media",
      sequence_number: "2",
      stream_id: streamId,
      media: { track: "inbound", chunk: "1", timestamp: "0", payload: btoa("\xd5".repeat(160)) },
    },
    { event: "dtmf", sequence_number: "3", stream_id: streamId, dtmf: { digit: "4" } },
    { event: "stop", sequence_number: "4", stream_id: streamId, stop: { call_control_id: callControlId } },
  ].map((frame) => JSON.stringify(frame));
}

describe("call.initiated → answer with streaming", () => {
  it("answers through the fake API with the stream, codec, command id and client state, then runs the call to completed", async () => {
    const callControlId = await initiate(pcmuNumber);
    const call = await callByCarrierId(token, callControlId);
    expect(call).toMatchObject({ carrier: "telnyx", direction: "inbound", to: pcmuNumber, from: "+14155550100", status: "initiated" });

    const { body } = await answerOf(callControlId);
    const streamUrl = new RegExp(`^wss://switchboard\\.test/telephony/telnyx/media/${call.sessionId}/([A-Za-z0-9_-]{16,})$`);
    expect(body.stream_url).toMatch(streamUrl);
    expect(body).toMatchObject({
      stream_bidirectional_mode: "rtp",
      stream_codec: "PCMU",
      stream_bidirectional_codec: "PCMU",
      stream_track: "inbound_track",
    });
    expect(body.command_id).toEqual(expect.stringContaining(call.sessionId));
    expect(JSON.parse(atob(body.client_state))).toEqual({ s: call.sessionId });

    // The media socket authenticates by the path token from the answer; its lifecycle lands in the history.
    const upgrade = await openTelnyxMedia(body.stream_url);
    expect(upgrade.status).toBe(101);
    const socket = upgrade.webSocket!;
    socket.accept();
    for (const frame of mediaFrames(callControlId, "PCMU")) socket.send(frame);
    const streamed = await eventually(async () => {
      const seen = await callByCarrierId(token, callControlId);
      return seen.events.some((e) => e.event === "media.stop") && seen;
    });
    expect(streamed.events.filter((e) => e.event.startsWith("media.")).map((e) => [e.event, e.detail])).toEqual([
      ["media.start", "pcmu"],
      ["media.dtmf", "4"],
      ["media.stop", null],
    ]);
    socket.close(1000, "done");

    expect((await event("call.answered", callControlId, call.sessionId)).status).toBe(200);
    expect((await callByCarrierId(token, callControlId)).status).toBe("in_progress");
    expect(
      (await event("call.hangup", callControlId, call.sessionId, { hangup_cause: "normal_clearing", hangup_source: "caller" })).status,
    ).toBe(200);
    const ended = await callByCarrierId(token, callControlId);
    expect({ status: ended.status, failureReason: ended.failureReason }).toEqual({ status: "completed", failureReason: null });
    expect(appliedMoves(ended.events)).toEqual(["initiated", "in_progress", "completed"]);
  });

  it("streams in the number's codec: PCMA for a number configured so", async () => {
    const callControlId = await initiate(pcmaNumber);
    const { body } = await answerOf(callControlId);
    expect(body).toMatchObject({ stream_codec: "PCMA", stream_bidirectional_codec: "PCMA", stream_bidirectional_mode: "rtp" });
    const upgrade = await openTelnyxMedia(body.stream_url);
    expect(upgrade.status).toBe(101);
    const socket = upgrade.webSocket!;
    socket.accept();
    for (const frame of mediaFrames(callControlId, "PCMA").slice(0, 2)) socket.send(frame);
    const started = await eventually(async () =>
      (await callByCarrierId(token, callControlId)).events.find((e) => e.event === "media.start"),
    );
    expect(started.detail).toBe("pcma");
    socket.close(1000, "done");
  });

  it("a redelivered call.initiated opens one call and answers it with one command id", async () => {
    const eventId = crypto.randomUUID();
    const callControlId = await initiate(pcmuNumber, randomCallControlId(), eventId);
    await initiate(pcmuNumber, callControlId, eventId);
    const { body } = await answerOf(callControlId);
    const answers = await simRequests({ carrier: "telnyx", callId: callControlId, path: "/actions/answer" });
    expect(new Set(answers.map((a) => (a.body as AnswerBody).command_id))).toEqual(new Set([body.command_id]));
    const call = await callByCarrierId(token, callControlId);
    expect(call.events.filter((e) => e.event === "call.initiated")).toHaveLength(1);
  });

  it("an unknown number is acknowledged and creates nothing; the call is rejected, never answered", async () => {
    const before = await callTraces();
    const callControlId = await initiate(randomE164());
    expect(await callTraces()).toEqual(before);
    const rejected = await eventually(
      async () => (await simRequests({ carrier: "telnyx", callId: callControlId, path: "/actions/reject" }))[0],
    );
    expect(rejected.body).toMatchObject({ cause: "CALL_REJECTED" });
    expect(await simRequests({ carrier: "telnyx", callId: callControlId, path: "/actions/answer" })).toEqual([]);
  });
});

describe("the call's end and its history", () => {
  it.each([
    ["user_busy", "busy"],
    ["originator_cancel", "canceled"],
  ])("a hangup before answer (%s) fails the call with reason %s", async (cause, reason) => {
    const callControlId = await initiate(pcmuNumber);
    const { sessionId } = await callByCarrierId(token, callControlId);
    expect((await event("call.hangup", callControlId, sessionId, { hangup_cause: cause })).status).toBe(200);
    const call = await callByCarrierId(token, callControlId);
    expect({ status: call.status, failureReason: call.failureReason, answeredAt: call.answeredAt }).toEqual({
      status: "failed",
      failureReason: reason,
      answeredAt: null,
    });
  });

  it("DTMF and streaming.* events land in the history; events without client_state still find their call", async () => {
    const callControlId = await initiate(pcmuNumber);
    const { sessionId } = await callByCarrierId(token, callControlId);
    // No client_state: the Worker finds the session from the carrier call id (KV, then D1).
    expect((await event("call.answered", callControlId, null)).status).toBe(200);
    expect((await event("streaming.started", callControlId, sessionId)).status).toBe(200);
    expect((await event("call.dtmf.received", callControlId, sessionId, { digit: "7" })).status).toBe(200);
    expect((await event("call.dtmf.received", callControlId, null, { digit: "#" })).status).toBe(200);
    expect((await event("streaming.failed", callControlId, sessionId, { failure_reason: "connection_failed" })).status).toBe(200);
    expect((await event("streaming.stopped", callControlId, sessionId)).status).toBe(200);
    const call = await callByCarrierId(token, callControlId);
    expect(call.status).toBe("in_progress");
    const lines = call.events
      .filter((e) => e.event.startsWith("streaming.") || e.event === "call.dtmf.received")
      .map((e) => [e.event, e.detail, e.outcome]);
    expect(lines).toEqual([
      ["streaming.started", "started", "applied"],
      ["call.dtmf.received", "7", "applied"],
      ["call.dtmf.received", "#", "applied"],
      ["streaming.failed", "failed: connection_failed", "applied"],
      ["streaming.stopped", "stopped", "applied"],
    ]);
  });
});
