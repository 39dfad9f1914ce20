import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { readWav } from "../simulators/carriers/audio.ts";
import { type CallReport, type CarrierApis, type RecordedRequest, simulateCall, startCarrierApis } from "../simulators/carriers/index.ts";
import { DEFAULT_CALLER } from "../simulators/carriers/simulate-call.ts";
import {
  TEST_PUBLIC_BASE_URL,
  TEST_SECRET_NAMES,
  TEST_TWILIO_ACCOUNT_SID,
  TEST_TWILIO_AUTH_TOKEN,
  testSettings,
} from "../support/test-settings.ts";
import { type ApiClient, eventually, type LocalPlatform, signIn, startLocalPlatform } from "./support/local-platform.ts";

/**
 * Whole calls through the real Worker (wrangler.toml, started by wrangler on a seeded local D1) and the carrier
 * simulators speaking the carriers' wire protocols: webhook → TwiML / `answer` → authenticated media upgrade →
 * caller audio → stop → hangup, then the call's record read back through the public API. The platform believes
 * it lives at TEST_PUBLIC_BASE_URL while the simulators reach it on 127.0.0.1, so every signature and URL the
 * platform checks or hands out is built from PUBLIC_BASE_URL, as behind a real proxy.
 */

const AUDIO = join(import.meta.dirname, "../fixtures/audio");
const hello = readWav(readFileSync(join(AUDIO, "caller-hello.wav")));
const goodbye = readWav(readFileSync(join(AUDIO, "caller-goodbye.wav")));

const TWILIO_NUMBER = "+15550100001";
const TELNYX_NUMBER = "+15550100002";
// Media time runs this much faster than real time for simulated inbound callers: the audio is the same, the run shorter.
const SPEED = 4;

interface CallEvent {
  seq: number;
  source: string;
  event: string;
  fromStatus: string | null;
  toStatus: string | null;
  outcome: string;
  detail: string | null;
}

interface CallDetail {
  id: string;
  sessionId: string;
  carrier: string;
  carrierCallId: string | null;
  direction: string;
  from: string;
  to: string;
  status: string;
  failureReason: string | null;
  answeredAt: string | null;
  endedAt: string | null;
  events: CallEvent[];
}

let carriers: CarrierApis;
let platform: LocalPlatform;
let api: ApiClient;

beforeAll(async () => {
  // The fakes first: the worker must be told where they are.
  carriers = await startCarrierApis();
  const settings = {
    ...(await testSettings(inject)),
    TWILIO_API_BASE: carriers.twilioBaseUrl,
    TELNYX_API_BASE: carriers.telnyxBaseUrl,
    // The simulated Telnyx posts from loopback, not from Telnyx's published ranges.
    TELNYX_IP_ALLOWLIST: "127.0.0.1/32,::1/128",
  };
  platform = await startLocalPlatform(settings, TEST_SECRET_NAMES);
  // Calls the fakes drive (outbound, and Telnyx after `answer`) go to the worker, signed for the public origin.
  carriers.control.setPlatform({ baseUrl: platform.url, publicBaseUrl: TEST_PUBLIC_BASE_URL });
  api = await signIn(platform.url, platform.admin.email, platform.admin.password);
  for (const [e164, carrier] of [
    [TWILIO_NUMBER, "twilio"],
    [TELNYX_NUMBER, "telnyx"],
  ] as const) {
    const created = await api.request("POST", "/api/v1/phone-numbers", { e164, carrier });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
  }
}, 120_000);

afterAll(async () => {
  // Fakes first: hanging up their live calls still reaches the worker.
  await carriers?.stop();
  await platform?.stop();
}, 60_000);

/** The call the API lists for this session, once its record has reached the state `ready` waits for. */
async function callOfSession(sessionId: string, ready: (call: CallDetail) => boolean): Promise<CallDetail> {
  return eventually(`the API to show session ${sessionId}'s call settled`, async () => {
    const list = await api.request("GET", "/api/v1/calls?limit=100");
    expect(list.status).toBe(200);
    const summary = (list.body as { items: Array<{ id: string; sessionId: string }> }).items.find((item) => item.sessionId === sessionId);
    if (!summary) return undefined;
    const detail = await api.request("GET", `/api/v1/calls/${summary.id}`);
    expect(detail.status).toBe(200);
    const call = detail.body as CallDetail;
    return ready(call) ? call : undefined;
  });
}

const ended = (call: CallDetail) =>
  ["completed", "failed"].includes(call.status) && call.events.some((event) => event.event === "media.stop");

/** The state machine moves that took effect, in order: `∅→initiated`, `initiated→ringing`, … */
const transitions = (call: CallDetail) =>
  call.events
    .filter((event) => event.outcome === "applied" && event.toStatus !== null)
    .map((event) => `${event.fromStatus ?? "∅"}→${event.toStatus}`);

const eventNames = (call: CallDetail) => call.events.map((event) => event.event);

const PROGRESS = ["initiated", "ringing", "in_progress", "completed"];
/** Every applied move goes forward: carrier callbacks race each other, and a late one must be ignored, never applied. */
const onlyForward = (moves: string[]) =>
  moves.every((move) => {
    const [from, to] = move.split("→") as [string, string];
    return from === "∅" || PROGRESS.indexOf(from) < PROGRESS.indexOf(to);
  });

/** Status of a WebSocket upgrade: 101 when accepted, else the HTTP status the worker refused it with. */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers, handshakeTimeout: 10_000 });
    socket.once("open", () => {
      socket.terminate();
      resolve(101);
    });
    socket.once("unexpected-response", (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.once("error", (error) => reject(error));
  });
}

function printTurns(report: CallReport): void {
  // Shown when a test fails (vitest prints logs of failing tests only): the simulator's per-turn figures.
  for (const turn of report.turns) {
    console.log(
      `${report.carrier} turn ${turn.utterance}: speech ended ${Math.round(turn.speechEndMs)} ms, agent ${turn.latencyMs === undefined ? "silent" : `${Math.round(turn.latencyMs)} ms`}`,
    );
  }
  for (const entry of report.timeline) console.log(`  +${Math.round(entry.atMs)} ms ${entry.kind} ${entry.detail}`);
}

describe("inbound calls, carrier to completed record", () => {
  it("Twilio: voice webhook → <Connect><Stream> → signed media upgrade → stop → completed", async () => {
    const report = await simulateCall({
      carrier: "twilio",
      baseUrl: platform.url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      to: TWILIO_NUMBER,
      utterances: [hello],
      speed: SPEED,
      lingerMs: 1000,
      maxDurationMs: 60_000,
      twilio: { accountSid: TEST_TWILIO_ACCOUNT_SID, authToken: TEST_TWILIO_AUTH_TOKEN, api: carriers.twilio },
    });
    printTurns(report);

    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.finalStatus).toBe("completed");
    const sessionId = report.sessionId!;
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const kinds = report.timeline.map((entry) => `${entry.kind} ${entry.detail}`);
    expect(kinds).toContain(`webhook POST ${TEST_PUBLIC_BASE_URL}/telephony/twilio/voice (CallStatus=ringing) → HTTP 200`);
    // The stream URL is public (wss://, PUBLIC_BASE_URL's host) and names the session; the caller reached it.
    expect(kinds).toContain(`twiml Connect → wss://switchboard.test/telephony/twilio/media/${sessionId}`);
    expect(kinds.some((kind) => kind.startsWith("media-connected "))).toBe(true);
    expect(kinds).toContain("status-callback completed #0 → HTTP 204");
    // Every frame of the utterance went over the socket (160 samples a frame), plus silence around it.
    expect(report.stats.mediaFramesSent).toBeGreaterThan(hello.length / 160);
    // The agent (the offline local engine, the default provider) answered the caller's turn audibly, with marks.
    expect(report.turns.map((turn) => turn.latencyMs === undefined)).toEqual([false]);
    expect(report.stats.agentAudioMs).toBeGreaterThan(500);
    expect(report.stats.marksPlayed).toBeGreaterThan(0);

    const call = await callOfSession(sessionId, ended);
    expect(call).toMatchObject({
      carrier: "twilio",
      carrierCallId: report.callId,
      direction: "inbound",
      from: DEFAULT_CALLER,
      to: TWILIO_NUMBER,
      status: "completed",
      failureReason: null,
    });
    expect(call.endedAt).not.toBeNull();
    const names = eventNames(call);
    expect(names.slice(0, 3)).toEqual(["call.opened", "twilio.ringing", "media.start"]);
    expect(names).toContain("twilio.completed");
    expect(names).toContain("media.stop");
    expect(call.events.find((event) => event.event === "media.start")?.detail).toBe("pcmu");
    const moves = transitions(call);
    expect(moves.slice(0, 2)).toEqual(["∅→initiated", "initiated→ringing"]);
    expect(moves.at(-1)).toMatch(/→completed$/);
    expect(onlyForward(moves)).toBe(true);
    expect(call.events.find((event) => event.toStatus === "completed")?.event).toBe("twilio.completed");

    // The media route refuses an upgrade that Twilio did not sign, and one signed with another account's token.
    const mediaUrl = `${platform.url.replace(/^http/, "ws")}/telephony/twilio/media/${sessionId}`;
    expect(await upgradeStatus(mediaUrl)).toBe(403);
    expect(await upgradeStatus(mediaUrl, { "X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl" })).toBe(403);
  });

  it("Telnyx: call.initiated → answer with stream → media upgrade with the path token → stop → completed", async () => {
    const answersBefore = carriers.control.requests({ carrier: "telnyx", to: TELNYX_NUMBER, path: "/actions/answer" }).length;
    const running = simulateCall({
      carrier: "telnyx",
      baseUrl: platform.url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      to: TELNYX_NUMBER,
      utterances: [hello],
      speed: SPEED,
      lingerMs: 1000,
      maxDurationMs: 60_000,
      telnyx: { api: carriers.telnyx, connectionId: "test-connection-id" },
    });
    // While the call is live, a guessed token for its session gets no socket (and does not displace the real one).
    const liveStreamUrl = await eventually("the platform's answer command", async () => {
      const answer = carriers.control.requests({ carrier: "telnyx", to: TELNYX_NUMBER, path: "/actions/answer" })[answersBefore];
      return answer?.status === 200 && answer.body !== null && typeof answer.body === "object" && "stream_url" in answer.body
        ? String(answer.body.stream_url)
        : undefined;
    });
    const guessed = new URL(liveStreamUrl.replace(/\/[^/]+$/, "/not-the-token"));
    expect(await upgradeStatus(`${platform.url.replace(/^http/, "ws")}${guessed.pathname}`)).toBe(403);
    const report = await running;
    printTurns(report);

    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.finalStatus).toBe("ended");
    // Telnyx's out-of-order-capable stream still carried a conversation: the local engine answered the turn.
    expect(report.turns.map((turn) => turn.latencyMs === undefined)).toEqual([false]);
    expect(report.stats.agentAudioMs).toBeGreaterThan(500);
    const sessionId = report.sessionId!;
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const webhooks = report.timeline.filter((entry) => entry.kind === "webhook").map((entry) => entry.detail);
    expect(webhooks).toEqual([
      "call.initiated → HTTP 200",
      "call.answered → HTTP 200",
      "streaming.started → HTTP 200",
      "streaming.stopped → HTTP 200",
      "call.hangup → HTTP 200",
    ]);

    // The platform answered through the Call Control API with a stream to this session's tokenised media route.
    const answers = carriers.control.requests({ carrier: "telnyx", callId: report.callId, path: "/actions/answer" });
    expect(answers).toHaveLength(1);
    const answer = answers[0] as RecordedRequest & { body: Record<string, unknown> };
    expect(answer.status).toBe(200);
    expect(answer.body.stream_url).toMatch(new RegExp(`^wss://switchboard\\.test/telephony/telnyx/media/${sessionId}/[A-Za-z0-9_-]{16,}$`));
    expect(JSON.parse(Buffer.from(String(answer.body.client_state), "base64").toString("utf8"))).toEqual({ s: sessionId });
    expect(typeof answer.body.command_id).toBe("string");

    const call = await callOfSession(sessionId, ended);
    expect(call).toMatchObject({
      carrier: "telnyx",
      carrierCallId: report.callId,
      direction: "inbound",
      from: DEFAULT_CALLER,
      to: TELNYX_NUMBER,
      status: "completed",
      failureReason: null,
    });
    expect(call.answeredAt).not.toBeNull();
    expect(call.endedAt).not.toBeNull();
    expect(transitions(call)).toEqual(["∅→initiated", "initiated→in_progress", "in_progress→completed"]);
    const names = eventNames(call);
    expect(names).toContain("media.start");
    expect(names).toContain("media.stop");
    expect(names.indexOf("media.start")).toBeLessThan(names.indexOf("media.stop"));
    expect(call.events.find((event) => event.toStatus === "completed")?.event).toBe("call.hangup");
    expect(report.timeline.some((entry) => entry.kind === "media-closed")).toBe(false);
  });

  // Twilio posts the voice webhook with CallStatus=ringing and, for inbound numbers, sends only the `completed`
  // status callback: the authenticated media stream is what shows the call was answered.
  it("Twilio: a live inbound call whose stream started is in_progress and hangs up as completed", async () => {
    // The caller says one line, then listens until someone hangs up: the call stays live while it is examined.
    const running = simulateCall({
      carrier: "twilio",
      baseUrl: platform.url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      to: TWILIO_NUMBER,
      utterances: [hello],
      speed: SPEED,
      lingerMs: 120_000,
      maxDurationMs: 120_000,
      twilio: { accountSid: TEST_TWILIO_ACCOUNT_SID, authToken: TEST_TWILIO_AUTH_TOKEN, api: carriers.twilio },
    });
    let callSid: string | null = null;
    try {
      const live = await eventually("a live inbound Twilio call with its stream up", async () => {
        const list = await api.request("GET", "/api/v1/calls?carrier=twilio&direction=inbound&limit=100");
        const open = (list.body as { items: CallDetail[] }).items.find((item) => !["completed", "failed"].includes(item.status));
        if (!open) return undefined;
        const detail = (await api.request("GET", `/api/v1/calls/${open.id}`)).body as CallDetail;
        callSid = detail.carrierCallId;
        return detail.events.some((event) => event.event === "media.start") ? detail : undefined;
      });
      expect(live.status).toBe("in_progress");
      expect(live.answeredAt).not.toBeNull();
      const hangup = await api.request("POST", `/api/v1/calls/${live.id}/hangup`);
      expect(hangup).toMatchObject({ status: 200, body: { status: "completed" } });
      const updates = carriers.control
        .requests({ carrier: "twilio", callId: live.carrierCallId! })
        .filter((request) => request.method === "POST");
      expect(updates.map((request) => request.body)).toEqual([{ Status: "completed" }]);
    } finally {
      // Whatever the platform did, the caller hangs up now (a no-op if the call already ended).
      const call = callSid === null ? undefined : carriers.twilio.call(callSid);
      if (call && "hangUp" in call) call.hangUp("completed");
      await running;
    }
  });
});

describe("outbound calls, API to completed record", () => {
  it("Twilio: POST /api/v1/calls → Calls.json → status callbacks, voice webhook ?sessionId, media → completed", async () => {
    const to = "+15550199001";
    // The callee answers, says a line, and hangs up.
    carriers.control.setCallee(to, { outcome: "answer", answerDelayMs: 100, utterances: [goodbye], hangUpAfterMs: 1500 });
    const placed = await api.request("POST", "/api/v1/calls", { to, carrier: "twilio" });
    expect(placed.status, JSON.stringify(placed.body)).toBe(201);
    const { id, sessionId, carrier, failover } = placed.body as { id: string; sessionId: string; carrier: string; failover: unknown };
    expect(carrier).toBe("twilio");
    expect(failover).toBeNull();

    const creates = carriers.control.requests({ carrier: "twilio", path: "/Calls.json", to });
    expect(creates).toHaveLength(1);
    const create = creates[0] as RecordedRequest & { body: Record<string, string | string[]> };
    expect(create.status).toBe(201);
    expect(create.body).toMatchObject({
      To: to,
      From: TWILIO_NUMBER,
      Url: `${TEST_PUBLIC_BASE_URL}/telephony/twilio/voice?sessionId=${sessionId}`,
      StatusCallback: `${TEST_PUBLIC_BASE_URL}/telephony/twilio/status?sessionId=${sessionId}`,
    });

    const call = await callOfSession(sessionId, ended);
    expect(call).toMatchObject({
      id,
      carrier: "twilio",
      carrierCallId: create.callId,
      direction: "outbound",
      from: TWILIO_NUMBER,
      to,
      status: "completed",
      failureReason: null,
    });
    expect(call.answeredAt).not.toBeNull();
    // Twilio sends initiated, ringing and answered as separate requests: `ringing` may land after `in-progress`.
    const moves = transitions(call);
    expect(moves[0]).toBe("∅→initiated");
    expect(moves.some((move) => move.endsWith("→in_progress"))).toBe(true);
    expect(moves.at(-1)).toBe("in_progress→completed");
    expect(onlyForward(moves)).toBe(true);
    const names = eventNames(call);
    expect(names[0]).toBe("call.requested");
    expect(names).toContain("carrier.dialed");
    expect(names).toContain("twilio.in-progress");
    expect(names).toContain("media.start");
    expect(names).toContain("media.stop");
    expect(call.events.find((event) => event.toStatus === "completed")?.event).toBe("twilio.completed");
    const fakeCall = carriers.twilio.call(create.callId!);
    expect(fakeCall?.status).toBe("completed");
  });

  it("Telnyx: POST /api/v1/calls → dial with stream → webhooks, media → completed", async () => {
    const to = "+15550199002";
    carriers.control.setCallee(to, { outcome: "answer", answerDelayMs: 100, utterances: [goodbye], hangUpAfterMs: 1500 });
    const placed = await api.request("POST", "/api/v1/calls", { to, carrier: "telnyx" });
    expect(placed.status, JSON.stringify(placed.body)).toBe(201);
    const { id, sessionId, carrier } = placed.body as { id: string; sessionId: string; carrier: string };
    expect(carrier).toBe("telnyx");

    const dials = carriers.control.requests({ carrier: "telnyx", path: "/v2/calls", to }).filter((request) => request.path === "/v2/calls");
    expect(dials).toHaveLength(1);
    const dial = dials[0] as RecordedRequest & { body: Record<string, unknown> };
    expect(dial.status).toBe(200);
    expect(dial.body).toMatchObject({
      to,
      from: TELNYX_NUMBER,
      connection_id: "test-connection-id",
      webhook_url: `${TEST_PUBLIC_BASE_URL}/telephony/telnyx/webhook`,
    });
    expect(dial.body.stream_url).toMatch(new RegExp(`^wss://switchboard\\.test/telephony/telnyx/media/${sessionId}/`));

    const call = await callOfSession(sessionId, ended);
    expect(call).toMatchObject({
      id,
      carrier: "telnyx",
      carrierCallId: dial.callId,
      direction: "outbound",
      from: TELNYX_NUMBER,
      to,
      status: "completed",
      failureReason: null,
    });
    expect(call.answeredAt).not.toBeNull();
    expect(transitions(call)).toEqual(["∅→initiated", "initiated→in_progress", "in_progress→completed"]);
    const names = eventNames(call);
    expect(names).toContain("media.start");
    expect(names).toContain("media.stop");
  });
});

describe("answering machines on outbound calls, through the simulators", () => {
  const MESSAGE = "Hello, this is Acme Supplies. Please call us back. Goodbye.";

  it.each(["twilio", "telnyx"] as const)("%s: a machine hears the voicemail after its beep, a person gets the agent", async (carrier) => {
    const machine = carrier === "twilio" ? "+15550199011" : "+15550199012";
    const person = carrier === "twilio" ? "+15550199013" : "+15550199014";
    carriers.control.setCallee(machine, { outcome: "answer", answerDelayMs: 100, answeredBy: "machine" });
    carriers.control.setCallee(person, { outcome: "answer", answerDelayMs: 100, utterances: [hello], hangUpAfterMs: 4000 });
    const place = async (to: string, body: Record<string, unknown>) => {
      const placed = await api.request("POST", "/api/v1/calls", { to, carrier, ...body });
      expect(placed.status, JSON.stringify(placed.body)).toBe(201);
      return placed.body as { sessionId: string };
    };
    const voicemail = await place(machine, { machineDetection: "voicemail", voicemailMessage: MESSAGE });
    const human = await place(person, { machineDetection: "hangup" });

    const left = (await callOfSession(voicemail.sessionId, (call) => call.status === "completed")) as CallDetail & Record<string, unknown>;
    expect(left).toMatchObject({ answeredBy: "machine", machineOutcome: "voicemail_left", voicemail: { chars: MESSAGE.length } });
    const fake = carrier === "twilio" ? carriers.twilio.call(left.carrierCallId!) : carriers.telnyx.call(left.carrierCallId!);
    expect(fake && "said" in fake ? fake.said : []).toEqual([MESSAGE]);

    const answered = (await callOfSession(human.sessionId, (call) => call.status === "completed")) as CallDetail & Record<string, unknown>;
    expect(answered).toMatchObject({ answeredBy: "human", machineOutcome: "agent", voicemail: null });
  });
});

describe("admission: calls past the tenant's limit are turned away", () => {
  /** The call the API lists for a carrier call id, once it is settled. */
  const refusedCall = (carrierCallId: string) =>
    eventually(`the refused call ${carrierCallId} in the API`, async () => {
      const list = await api.request("GET", "/api/v1/calls?status=failed&limit=100");
      const found = (list.body as { items: CallDetail[] }).items.find((item) => item.carrierCallId === carrierCallId);
      return found ? ((await api.request("GET", `/api/v1/calls/${found.id}`)).body as CallDetail) : undefined;
    });

  it("Twilio says the busy message and hangs up; Telnyx is answered without media, told, then hung up", async () => {
    // A web session holds the tenant's only slot.
    expect((await api.request("PATCH", "/api/v1/tenant/settings", { maxConcurrentSessions: 1 })).status).toBe(200);
    const web = await api.request("POST", "/api/v1/sessions", { provider: "local" });
    expect(web.status).toBe(201);
    const webId = (web.body as { id: string }).id;
    try {
      const common = {
        baseUrl: platform.url,
        publicBaseUrl: TEST_PUBLIC_BASE_URL,
        utterances: [hello],
        speed: SPEED,
        maxDurationMs: 60_000,
      };
      const [twilio, telnyx] = await Promise.all([
        simulateCall({
          ...common,
          carrier: "twilio",
          to: TWILIO_NUMBER,
          twilio: { accountSid: TEST_TWILIO_ACCOUNT_SID, authToken: TEST_TWILIO_AUTH_TOKEN, api: carriers.twilio },
        }),
        simulateCall({
          ...common,
          carrier: "telnyx",
          to: TELNYX_NUMBER,
          telnyx: { api: carriers.telnyx, connectionId: "test-connection-id" },
        }),
      ]);
      for (const report of [twilio, telnyx]) printTurns(report);

      expect(twilio.errors).toEqual([]);
      expect(twilio.finalStatus).toBe("completed");
      expect(twilio.timeline.filter((entry) => entry.kind === "twiml").map((entry) => entry.detail)).toEqual(["Say, Hangup"]);

      expect(telnyx.errors).toEqual([]);
      expect(telnyx.finalStatus).toBe("ended");
      expect(telnyx.timeline.filter((entry) => entry.kind === "webhook").map((entry) => entry.detail)).toEqual([
        "call.initiated → HTTP 200",
        "call.answered → HTTP 200",
        "call.speak.started → HTTP 200",
        "call.speak.ended → HTTP 200",
        "call.hangup → HTTP 200",
      ]);
      const commands = carriers.control.requests({ carrier: "telnyx", callId: telnyx.callId });
      expect(commands.map((request) => request.path.split("/").pop())).toEqual(["answer", "speak", "hangup"]);
      expect(commands[0]!.body).not.toHaveProperty("stream_url");

      for (const report of [twilio, telnyx]) {
        const call = await refusedCall(report.callId);
        expect(call).toMatchObject({ direction: "inbound", status: "failed", failureReason: "concurrency_limit", answeredAt: null });
        expect(eventNames(call)).toContain("admission.refused");
      }
    } finally {
      await api.request("POST", `/api/v1/sessions/${webId}/end`);
      await api.request("PATCH", "/api/v1/tenant/settings", { maxConcurrentSessions: null });
    }
  });
});
