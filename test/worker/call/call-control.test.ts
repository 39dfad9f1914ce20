import { beforeAll, describe, expect, it } from "vitest";
import { appliedMoves, callByCarrierId, callDetail, tenantWithNumbers, twilioStatus } from "../support/calls.ts";
import {
  endTelnyxCallAtCarrier,
  endTwilioCallAtCarrier,
  eventually,
  parseStreamTwiml,
  postTelnyx,
  postTwilio,
  randomCallControlId,
  randomE164,
  type SimRequest,
  simFault,
  simRequests,
  telnyxEnvelope,
  twilioCallParams,
} from "../support/carriers.ts";
import { api, errorOf, userWithToken } from "../support/identity.ts";

/**
 * Hangup, hold, resume and transfer through the real API, the call's object and each carrier's fake API: what the
 * carrier is asked to do, how the call's state moves, idempotency, and what happens when the carrier refuses.
 */
let agent: string;
let viewer: string;
let twilioNumber: string;
let telnyxNumber: string;

beforeAll(async () => {
  const fixture = await tenantWithNumbers([{ carrier: "twilio" }, { carrier: "telnyx" }]);
  [twilioNumber, telnyxNumber] = fixture.numbers as [string, string];
  agent = (await userWithToken(fixture.tenantId, "agent")).accessToken;
  viewer = (await userWithToken(fixture.tenantId, "viewer")).accessToken;
});

const control = (id: string, action: string, token = agent, body?: unknown) =>
  api(`/api/v1/calls/${id}/${action}`, { method: "POST", token, ...(body === undefined ? {} : { body }) });

async function expectStatus(response: Response, status: number, callStatus?: string) {
  expect(response.status).toBe(status);
  const body = (await response.json()) as { status?: string };
  if (callStatus) expect(body.status).toBe(callStatus);
}

/** A Twilio call the fake knows (placed through the API), optionally answered by its status callback. */
async function twilioCall(answer = true) {
  const to = randomE164();
  const response = await api("/api/v1/calls", { method: "POST", token: agent, body: { to, carrier: "twilio" } });
  expect(response.status).toBe(201);
  const { id, sessionId } = (await response.json()) as { id: string; sessionId: string };
  const callSid = (await callDetail(agent, id)).carrierCallId!;
  if (answer)
    expect((await twilioStatus(callSid, to, "in-progress", { sequence: 2, sessionId, extra: { From: twilioNumber } })).status).toBe(204);
  const updates = () => simRequests({ carrier: "twilio", callId: callSid, path: `/Calls/${callSid}.json` });
  return { id, sessionId, callSid, to, updates };
}

/** A Telnyx inbound call, answered by the platform at the fake and reported answered by Telnyx. */
async function telnyxCall() {
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
  const { id, sessionId } = await callByCarrierId(agent, callControlId);
  const clientState = btoa(JSON.stringify({ s: sessionId }));
  const webhook = (type: string, payload: Record<string, unknown> = {}) =>
    postTelnyx(telnyxEnvelope(type, { call_control_id: callControlId, client_state: clientState, ...payload }));
  expect((await webhook("call.answered")).status).toBe(200);
  const actions = (action: string) => simRequests({ carrier: "telnyx", callId: callControlId, path: `/actions/${action}` });
  return { id, sessionId, callControlId, streamUrl: (answer.body as { stream_url: string }).stream_url, webhook, actions };
}

const formOf = (request: SimRequest | undefined) => request?.body as Record<string, string>;

describe("Twilio", () => {
  it("hold, resume, transfer and hangup update the live call; repeats are answered without asking Twilio again", async () => {
    const call = await twilioCall();
    // The stream TwiML Twilio fetched when the call was answered: resume must reconnect to the same stream.
    const voice = await postTwilio(
      `/telephony/twilio/voice?sessionId=${call.sessionId}`,
      twilioCallParams(call.callSid, call.to, "in-progress", { From: twilioNumber }),
    );
    const stream = parseStreamTwiml(await voice.text());

    await expectStatus(await control(call.id, "hold"), 200, "on_hold");
    await expectStatus(await control(call.id, "hold"), 200, "on_hold");
    let updates = await call.updates();
    expect(updates).toHaveLength(1);
    expect(formOf(updates[0]).Twiml).toMatch(/<Say>Please hold\.<\/Say><Pause length="\d+"\/>/);

    await expectStatus(await control(call.id, "resume"), 200, "in_progress");
    await expectStatus(await control(call.id, "resume"), 200, "in_progress");
    updates = await call.updates();
    expect(updates).toHaveLength(2);
    expect(parseStreamTwiml(formOf(updates[1]).Twiml!)).toEqual(stream);

    const target = randomE164();
    await expectStatus(await control(call.id, "transfer", agent, { to: target }), 200, "transferred");
    await expectStatus(await control(call.id, "transfer", agent, { to: target }), 200, "transferred");
    updates = await call.updates();
    expect(updates).toHaveLength(3);
    expect(formOf(updates[2]).Twiml).toContain(`<Dial>${target}</Dial>`);

    await expectStatus(await control(call.id, "hangup"), 200, "completed");
    await expectStatus(await control(call.id, "hangup"), 200, "completed");
    updates = await call.updates();
    expect(updates.map((u) => formOf(u).Status)).toEqual([undefined, undefined, undefined, "completed"]);

    const detail = await callDetail(agent, call.id);
    expect(appliedMoves(detail.events)).toEqual([
      "initiated",
      "in_progress",
      "on_hold",
      "in_progress",
      "transferring",
      "transferred",
      "completed",
    ]);
    expect(detail.events.filter((e) => e.source === "api").map((e) => e.event)).toEqual(
      expect.arrayContaining(["api.hold", "api.resume", "api.transfer", "api.hangup"]),
    );
  });

  it("a late `answered` callback does not take a held call off hold", async () => {
    const call = await twilioCall(false);
    // The answered call's voice webhook arrives first and answers the call; the status callback saying so is late.
    await postTwilio(
      `/telephony/twilio/voice?sessionId=${call.sessionId}`,
      twilioCallParams(call.callSid, call.to, "in-progress", { From: twilioNumber }),
    );
    await expectStatus(await control(call.id, "hold"), 200, "on_hold");
    expect((await twilioStatus(call.callSid, call.to, "in-progress", { sequence: 2, sessionId: call.sessionId })).status).toBe(204);
    const detail = await callDetail(agent, call.id);
    expect(detail.status).toBe("on_hold");
    expect(detail.events.at(-1)).toMatchObject({ event: "twilio.in-progress", outcome: "ignored", fromStatus: "on_hold" });
  });

  it("hanging up a call Twilio already ended (404/20404) succeeds", async () => {
    const call = await twilioCall();
    expect((await endTwilioCallAtCarrier(call.callSid)).status).toBe(200);
    await expectStatus(await control(call.id, "hangup"), 200, "completed");
    expect((await call.updates()).map((u) => u.status)).toEqual([200, 404]);
  });

  it("hanging up a call that was never answered cancels it", async () => {
    const call = await twilioCall(false);
    await expectStatus(await control(call.id, "hangup"), 200, "failed");
    expect((await call.updates()).map((u) => formOf(u).Status)).toEqual(["canceled"]);
    expect((await callDetail(agent, call.id)).failureReason).toBe("canceled");
  });
});

describe("Telnyx", () => {
  it("hold stops the stream, resume restarts it, transfer completes on call.bridged, hangup ends it", async () => {
    const call = await telnyxCall();
    await expectStatus(await control(call.id, "hold"), 200, "on_hold");
    await expectStatus(await control(call.id, "hold"), 200, "on_hold");
    const stops = await call.actions("streaming_stop");
    expect(stops).toHaveLength(1);
    expect((stops[0]!.body as { command_id: string }).command_id).toContain(call.sessionId);

    await expectStatus(await control(call.id, "resume"), 200, "in_progress");
    const [start, ...moreStarts] = await call.actions("streaming_start");
    expect(moreStarts).toEqual([]);
    expect(start!.body).toMatchObject({
      stream_url: call.streamUrl,
      stream_bidirectional_mode: "rtp",
      stream_codec: "PCMU",
      client_state: btoa(JSON.stringify({ s: call.sessionId })),
    });

    const target = "sip:agent@example.com";
    await expectStatus(await control(call.id, "transfer", agent, { to: target }), 200, "transferring");
    const [transfer] = await call.actions("transfer");
    expect(transfer!.body).toMatchObject({ to: target, client_state: btoa(JSON.stringify({ s: call.sessionId })) });
    expect((await call.webhook("call.bridged")).status).toBe(200);
    expect((await callDetail(agent, call.id)).status).toBe("transferred");

    await expectStatus(await control(call.id, "hangup"), 200, "completed");
    expect(await call.actions("hangup")).toHaveLength(1);
    const commandIds = [...stops, start, transfer].map((r) => (r!.body as { command_id: string }).command_id);
    expect(new Set(commandIds).size).toBe(commandIds.length);
    const detail = await callDetail(agent, call.id);
    expect(appliedMoves(detail.events)).toEqual([
      "initiated",
      "in_progress",
      "on_hold",
      "in_progress",
      "transferring",
      "transferred",
      "completed",
    ]);
    expect(detail.events.find((e) => e.event === "call.bridged")).toMatchObject({
      source: "carrier",
      fromStatus: "transferring",
      toStatus: "transferred",
      outcome: "applied",
    });
  });

  it("hanging up a call Telnyx already ended (422/90018) succeeds", async () => {
    const call = await telnyxCall();
    expect((await endTelnyxCallAtCarrier(call.callControlId)).status).toBe(200);
    await expectStatus(await control(call.id, "hangup"), 200, "completed");
    expect((await call.actions("hangup")).map((r) => r.status)).toEqual([200, 422]);
  });
});

describe("refusals", () => {
  it("a command the call's state does not allow → 409, and the carrier is not asked", async () => {
    const call = await twilioCall(false);
    for (const [action, body] of [
      ["hold", undefined],
      ["resume", undefined],
      ["transfer", { to: randomE164() }],
    ] as const) {
      const response = await control(call.id, action, agent, body);
      expect(response.status, action).toBe(409);
      expect((await errorOf(response)).code).toBe("invalid_state");
    }
    expect(await call.updates()).toEqual([]);
    expect((await callDetail(agent, call.id)).status).toBe("initiated");
  });

  it("a carrier 5xx → 502 and the call's state is unchanged; the retry succeeds", async () => {
    const twilio = await twilioCall();
    await simFault({ match: { callId: twilio.callSid, path: `/Calls/${twilio.callSid}.json` }, status: 500, times: 2 });
    expect((await control(twilio.id, "hold")).status).toBe(502);
    expect((await control(twilio.id, "hangup")).status).toBe(502);
    const unchanged = await callDetail(agent, twilio.id);
    expect(unchanged.status).toBe("in_progress");
    expect(unchanged.events.filter((e) => e.event.startsWith("api."))).toEqual([]);
    await expectStatus(await control(twilio.id, "hold"), 200, "on_hold");

    const telnyx = await telnyxCall();
    await simFault({ match: { callId: telnyx.callControlId, path: "/actions/transfer" }, status: 503, times: 1 });
    expect((await control(telnyx.id, "transfer", agent, { to: randomE164() })).status).toBe(502);
    expect((await callDetail(agent, telnyx.id)).status).toBe("in_progress");
  });

  it("viewers may not control calls (403), and unknown calls are 404", async () => {
    const call = await twilioCall();
    for (const [action, body] of [
      ["hold", undefined],
      ["resume", undefined],
      ["hangup", undefined],
      ["transfer", { to: randomE164() }],
    ] as const) {
      expect((await control(call.id, action, viewer, body)).status, action).toBe(403);
    }
    expect(await call.updates()).toEqual([]);
    expect((await callDetail(viewer, call.id)).status).toBe("in_progress");
    expect((await control(crypto.randomUUID(), "hangup")).status).toBe(404);
  });
});
