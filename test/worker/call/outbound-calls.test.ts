import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { appliedMoves, callDetail, listCalls, tenantWithNumbers, twilioStatus } from "../support/calls.ts";
import {
  parseStreamTwiml,
  postTelnyx,
  postTwilio,
  randomE164,
  simFault,
  simRequests,
  telnyxEnvelope,
  twilioCallParams,
} from "../support/carriers.ts";
import { api, createTenant, errorOf, userWithToken } from "../support/identity.ts";

/**
 * POST /api/v1/calls through the real Worker and call object against the fake carrier APIs: the request each carrier
 * receives, failover when the chosen carrier's API is down, and the carrier's callbacks driving the call afterwards.
 * Faults are keyed by the dialled number, unique per test, because every test file shares the fakes.
 */
let token: string;
let twilioNumber: string;
let telnyxNumber: string;

beforeAll(async () => {
  const fixture = await tenantWithNumbers([{ carrier: "twilio" }, { carrier: "telnyx" }]);
  token = fixture.token;
  [twilioNumber, telnyxNumber] = fixture.numbers as [string, string];
});

interface Placed {
  id: string;
  sessionId: string;
  carrier: "twilio" | "telnyx";
  status: string;
  failover: { from: string; reason: string } | null;
}

async function place(body: Record<string, unknown>, expectedStatus = 201) {
  const response = await api("/api/v1/calls", { method: "POST", token, body });
  expect(response.status).toBe(expectedStatus);
  return response;
}

const placed = async (body: Record<string, unknown>): Promise<Placed> => (await place(body)).json();
const ofCall = (sessionId: string) => `?sessionId=${sessionId}`;

describe("the request each carrier receives", () => {
  it("Twilio Calls.json, then status callbacks and the answered call's voice webhook drive the call", async () => {
    const to = randomE164();
    const call = await placed({ to });
    expect(call).toMatchObject({ carrier: "twilio", status: "initiated", failover: null });

    const [create, ...more] = await simRequests({ carrier: "twilio", to, path: "/Calls.json" });
    expect(more).toEqual([]);
    expect(create).toMatchObject({ method: "POST", path: `/2010-04-01/Accounts/${env.TWILIO_ACCOUNT_SID}/Calls.json`, status: 201 });
    expect(create!.body).toEqual({
      To: to,
      From: twilioNumber,
      Url: `https://switchboard.test/telephony/twilio/voice?sessionId=${call.sessionId}`,
      StatusCallback: `https://switchboard.test/telephony/twilio/status?sessionId=${call.sessionId}`,
      StatusCallbackMethod: "POST",
      StatusCallbackEvent: ["initiated", "ringing", "answered", "completed"],
      Timeout: "30",
    });
    const recorded = await callDetail(token, call.id);
    expect(recorded).toMatchObject({
      carrier: "twilio",
      carrierCallId: create!.callId,
      direction: "outbound",
      from: twilioNumber,
      to,
      status: "initiated",
    });

    // Twilio's callbacks come back to the URLs it was given, signed, with our session id in the query.
    const callSid = create!.callId!;
    const extra = { From: twilioNumber, Direction: "outbound-api" };
    for (const [status, sequence] of [
      ["initiated", 0],
      ["ringing", 1],
      ["in-progress", 2],
    ] as const) {
      expect((await twilioStatus(callSid, to, status, { sequence, sessionId: call.sessionId, extra })).status).toBe(204);
    }
    expect((await callDetail(token, call.id)).status).toBe("in_progress");
    const voice = await postTwilio(`/telephony/twilio/voice${ofCall(call.sessionId)}`, twilioCallParams(callSid, to, "in-progress", extra));
    expect(voice.status).toBe(200);
    const stream = parseStreamTwiml(await voice.text());
    expect(stream.url).toBe(`wss://switchboard.test/telephony/twilio/media/${call.sessionId}`);
    expect(stream.token.length).toBeGreaterThanOrEqual(16);
    expect((await twilioStatus(callSid, to, "completed", { sequence: 3, sessionId: call.sessionId, extra })).status).toBe(204);

    const done = await callDetail(token, call.id);
    expect({ status: done.status, failureReason: done.failureReason }).toEqual({ status: "completed", failureReason: null });
    expect(appliedMoves(done.events)).toEqual(["initiated", "ringing", "in_progress", "completed"]);
    expect(done.events.find((e) => e.event === "carrier.dialed")).toMatchObject({ source: "api", detail: "twilio" });
    // Its session id is not derived from the CallSid, so its KV route lets a callback without the id find it.
    expect(JSON.parse((await env.CACHE.get(`carrier-call:twilio:${callSid}`))!)).toEqual({
      value: { sessionId: call.sessionId, tenantId: expect.any(String) },
    });
  });

  it("Telnyx dial (chosen by its caller id), then Call Control webhooks drive the call", async () => {
    const to = randomE164();
    const call = await placed({ to, from: telnyxNumber });
    expect(call).toMatchObject({ carrier: "telnyx", status: "initiated", failover: null });
    const [dial, ...more] = await simRequests({ carrier: "telnyx", to, path: "/v2/calls" });
    expect(more).toEqual([]);
    expect(dial).toMatchObject({ method: "POST", path: "/v2/calls", status: 200 });
    const body = dial!.body as Record<string, string>;
    expect(body).toMatchObject({
      connection_id: env.TELNYX_CONNECTION_ID,
      to,
      from: telnyxNumber,
      webhook_url: "https://switchboard.test/telephony/telnyx/webhook",
      stream_track: "inbound_track",
      stream_codec: "PCMU",
      stream_bidirectional_mode: "rtp",
      stream_bidirectional_codec: "PCMU",
    });
    expect(body.stream_url).toMatch(new RegExp(`^wss://switchboard\\.test/telephony/telnyx/media/${call.sessionId}/[A-Za-z0-9_-]{16,}$`));
    expect(body.command_id).toEqual(expect.stringContaining(call.sessionId));
    expect(JSON.parse(atob(body.client_state!))).toEqual({ s: call.sessionId });

    const callControlId = dial!.callId!;
    expect((await callDetail(token, call.id)).carrierCallId).toBe(callControlId);
    const webhook = (type: string, payload: Record<string, unknown> = {}) =>
      postTelnyx(
        telnyxEnvelope(type, {
          call_control_id: callControlId,
          client_state: body.client_state,
          direction: "outgoing",
          from: telnyxNumber,
          to,
          ...payload,
        }),
      );
    expect((await webhook("call.initiated")).status).toBe(200);
    expect((await webhook("call.answered")).status).toBe(200);
    expect((await callDetail(token, call.id)).status).toBe("in_progress");
    expect((await webhook("call.hangup", { hangup_cause: "normal_clearing" })).status).toBe(200);
    const done = await callDetail(token, call.id);
    expect({ status: done.status, failureReason: done.failureReason, direction: done.direction }).toEqual({
      status: "completed",
      failureReason: null,
      direction: "outbound",
    });
    // The outbound call.initiated reached the existing call; it opened no second one.
    expect((await listCalls(token, "?carrier=telnyx")).items.filter((c) => c.to === to)).toHaveLength(1);
  });
});

describe("carrier failover", () => {
  it("fails over to Telnyx when Twilio's API answers 5xx, and says so", async () => {
    const to = randomE164();
    await simFault({ match: { to, path: "/Calls.json" }, status: 503, times: 1 });
    const call = await placed({ to });
    expect(call).toMatchObject({ carrier: "telnyx", failover: { from: "twilio" } });
    expect(call.failover!.reason).toContain("503");
    expect((await simRequests({ carrier: "twilio", to })).map((r) => r.status)).toEqual([503]);
    expect(await simRequests({ carrier: "telnyx", to, path: "/v2/calls" })).toHaveLength(1);
    const recorded = await callDetail(token, call.id);
    expect(recorded).toMatchObject({ carrier: "telnyx", from: telnyxNumber, status: "initiated" });
    expect(recorded.events.filter((e) => e.event.startsWith("carrier.")).map((e) => [e.event, e.detail?.split(":")[0]])).toEqual([
      ["carrier.dial_failed", "twilio"],
      ["carrier.dialed", "telnyx"],
    ]);
  });

  it("fails over when Twilio's API does not answer in time", async () => {
    const to = randomE164();
    // Longer than the platform's 5 s carrier timeout.
    await simFault({ match: { to, path: "/Calls.json" }, delayMs: 6_000, times: 1 });
    const call = await placed({ to });
    expect(call).toMatchObject({ carrier: "telnyx", failover: { from: "twilio" } });
    expect(call.failover!.reason).toMatch(/timeout|abort/i);
  });

  it("both carriers failing → 502, and the call is recorded as failed", async () => {
    const to = randomE164();
    await simFault({ match: { to, path: "/Calls.json" }, status: 500, times: 1 });
    await simFault({ match: { to, path: "/v2/calls" }, status: 502, times: 1 });
    const response = await place({ to }, 502);
    expect((await errorOf(response)).code).toBe("carrier_unavailable");
    const [call, ...more] = (await listCalls(token, "?direction=outbound")).items.filter((c) => c.to === to);
    expect(more).toEqual([]);
    expect({ status: call!.status, failureReason: call!.failureReason }).toEqual({
      status: "failed",
      failureReason: "carrier_unavailable",
    });
    const detail = await callDetail(token, call!.id);
    expect(detail.events.filter((e) => e.event === "carrier.dial_failed").map((e) => e.detail?.split(":")[0])).toEqual([
      "twilio",
      "telnyx",
      "carrier_unavailable",
    ]);
  });

  it("a 4xx from the carrier is the call's fault, not the carrier's: no failover", async () => {
    const to = randomE164();
    await simFault({
      match: { to, path: "/Calls.json" },
      status: 400,
      times: 1,
      body: { code: 21211, message: "Invalid 'To' Phone Number", status: 400 },
    });
    await place({ to }, 502);
    expect(await simRequests({ carrier: "telnyx", to })).toEqual([]);
    const [call] = (await listCalls(token, "?direction=outbound")).items.filter((c) => c.to === to);
    expect(call).toMatchObject({ status: "failed", carrier: "twilio" });
  });
});

describe("refusals", () => {
  it("a tenant with no numbers gets 409; a caller id that is not the tenant's gets 400; neither reaches a carrier", async () => {
    const bare = await userWithToken(await createTenant(), "admin");
    const to = randomE164();
    const none = await api("/api/v1/calls", { method: "POST", token: bare.accessToken, body: { to } });
    expect(none.status).toBe(409);
    expect((await errorOf(none)).code).toBe("no_caller_id");
    const foreign = await api("/api/v1/calls", { method: "POST", token, body: { to, from: randomE164() } });
    expect(foreign.status).toBe(400);
    expect(await simRequests({ to })).toEqual([]);
  });
});
