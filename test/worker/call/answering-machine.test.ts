import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { VERDICT_DEADLINE_KEY, VERDICT_TIMEOUT_MS } from "../../../durable-objects/call/answering-machine.ts";
import { type CallDetail, callDetail, passStoredDeadline, tenantWithNumbers, twilioStatus } from "../support/calls.ts";
import {
  eventually,
  parseStreamTwiml,
  postTelnyx,
  postTwilio,
  randomE164,
  simRequests,
  telnyxEnvelope,
  twilioCallParams,
} from "../support/carriers.ts";
import { api, errorOf } from "../support/identity.ts";
import { openStream } from "../support/media-caller.ts";
import { putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";

/**
 * Answering machines on outbound calls, through the real Worker and call object, on both carriers: the detection
 * each carrier is asked for, its signed verdict (Twilio's AsyncAmdStatusCallback, Telnyx's `call.machine.*`), and
 * what follows — the agent (held until then) for a person, a hangup or a voicemail after the beep for a machine —
 * read back from the fake carrier APIs, the provider simulator and GET /api/v1/calls/{id}.
 */
let token: string;
let twilioNumber: string;
let telnyxNumber: string;

beforeAll(async () => {
  const fixture = await tenantWithNumbers([
    { carrier: "twilio", provider: "openai" },
    { carrier: "telnyx", provider: "openai" },
  ]);
  token = fixture.token;
  [twilioNumber, telnyxNumber] = fixture.numbers as [string, string];
});

const MESSAGE = "Hello, this is Acme Supplies about your order. Please call us back at 555 0100. Thank you.";

async function place(body: Record<string, unknown>, key = uniqueKey("amd")) {
  const response = await api("/api/v1/calls", { method: "POST", token, body, headers: { "X-Correlation-ID": key } });
  expect(response.status).toBe(201);
  const placed = (await response.json()) as { id: string; sessionId: string };
  const call = await callDetail(token, placed.id);
  return { ...placed, key, callId: call.carrierCallId! };
}

/** Twilio's AsyncAmdStatusCallback, signed, to the URL the platform gave it. */
function twilioAmd(sessionId: string, callSid: string, answeredBy: string, extra: Record<string, string> = {}) {
  return postTwilio(`/telephony/twilio/amd?sessionId=${sessionId}`, {
    AccountSid: env.TWILIO_ACCOUNT_SID,
    CallSid: callSid,
    AnsweredBy: answeredBy,
    MachineDetectionDuration: "2400",
    ...extra,
  });
}

/** A Twilio outbound call answered: its status callback, then the voice webhook's stream. */
async function answerTwilio(call: { sessionId: string; callId: string }, to: string) {
  const extra = { From: twilioNumber, Direction: "outbound-api" };
  expect((await twilioStatus(call.callId, to, "in-progress", { sequence: 2, sessionId: call.sessionId, extra })).status).toBe(204);
  const voice = await postTwilio(
    `/telephony/twilio/voice?sessionId=${call.sessionId}`,
    twilioCallParams(call.callId, to, "in-progress", extra),
  );
  expect(voice.status).toBe(200);
  return parseStreamTwiml(await voice.text());
}

function telnyxWebhook(call: { sessionId: string; callId: string }, to: string) {
  return (type: string, payload: Record<string, unknown> = {}, id?: string) =>
    postTelnyx(
      telnyxEnvelope(
        type,
        {
          call_control_id: call.callId,
          client_state: btoa(JSON.stringify({ s: call.sessionId })),
          direction: "outgoing",
          from: telnyxNumber,
          to,
          ...payload,
        },
        id,
      ),
    );
}

const settled = (id: string, ready: (call: CallDetail) => boolean) =>
  eventually(async () => {
    const call = await callDetail(token, id);
    return ready(call) ? call : null;
  });

describe("Twilio", () => {
  it("asks for detection, holds the agent until a person is known, then the agent answers what they said", async () => {
    const to = randomE164();
    const key = uniqueKey("amd-human");
    await putScenario(key, { replies: ["Hello! This is Acme calling about your order."], callerTranscripts: ["Hello?"] });
    const call = await place({ to, provider: "openai", machineDetection: "hangup" }, key);
    const [create] = await simRequests({ carrier: "twilio", to, path: "/Calls.json" });
    expect(create!.body).toMatchObject({
      MachineDetection: "Enable",
      AsyncAmd: "true",
      AsyncAmdStatusCallback: `https://switchboard.test/telephony/twilio/amd?sessionId=${call.sessionId}`,
      AsyncAmdStatusCallbackMethod: "POST",
    });

    const stream = await answerTwilio(call, to);
    const callee = await openStream({ streamUrl: stream.url, callSid: call.callId, mediaToken: stream.token });
    await callee.say("hello");
    await callee.silence(600);
    // No verdict yet: the provider has not even been dialled, and nothing was said to the callee.
    expect(await simulatorConnections(key)).toHaveLength(0);
    expect(callee.agentAudioBytes()).toBe(0);

    expect((await twilioAmd(call.sessionId, call.callId, "human")).status).toBe(204);
    await callee.until(() => callee.agentAudioBytes() >= 8_000);
    // What the person said before the verdict was held for the agent, not lost.
    const [connection] = await simulatorConnections(key);
    expect(connection!.audioIn.frames).toBeGreaterThan(50);
    const done = await settled(call.id, (c) => c.machineOutcome === "agent");
    expect(done).toMatchObject({ machineDetection: "hangup", answeredBy: "human", machineOutcome: "agent", voicemail: null });
  });

  it("hangs up on a machine; the agent never speaks, and a repeated verdict changes nothing", async () => {
    const to = randomE164();
    const call = await place({ to, provider: "openai", machineDetection: "hangup" });
    const stream = await answerTwilio(call, to);
    const callee = await openStream({ streamUrl: stream.url, callSid: call.callId, mediaToken: stream.token });
    await callee.say("hello");

    expect((await twilioAmd(call.sessionId, call.callId, "machine_start")).status).toBe(204);
    const hangup = await eventually(async () =>
      (await simRequests({ carrier: "twilio", callId: call.callId })).find(
        (r) => (r.body as Record<string, string>).Status === "completed",
      ),
    );
    expect(hangup.path).toBe(`/2010-04-01/Accounts/${env.TWILIO_ACCOUNT_SID}/Calls/${call.callId}.json`);
    const done = await settled(call.id, (c) => c.status === "completed");
    expect(done).toMatchObject({ answeredBy: "machine", machineOutcome: "machine_hangup", voicemail: null });

    // The same signed delivery again, and a later contrary verdict: acknowledged, nothing more sent or recorded.
    expect((await twilioAmd(call.sessionId, call.callId, "machine_start")).status).toBe(204);
    expect((await twilioAmd(call.sessionId, call.callId, "human")).status).toBe(204);
    const after = await callDetail(token, call.id);
    expect(after).toMatchObject({ answeredBy: "machine", machineOutcome: "machine_hangup" });
    expect(after.events.filter((e) => e.event.startsWith("amd."))).toHaveLength(1);
    const updates = (await simRequests({ carrier: "twilio", callId: call.callId })).filter(
      (r) => r.method === "POST" && r.path.endsWith(`${call.callId}.json`),
    );
    expect(updates).toHaveLength(1);
    expect(await simulatorConnections(call.key)).toHaveLength(0);
    expect(callee.agentAudioBytes()).toBe(0);
  });

  it("leaves the voicemail after the beep: <Say> the message then <Hangup/>, recorded by length and digest", async () => {
    const to = randomE164();
    const call = await place({ to, provider: "openai", machineDetection: "voicemail", voicemailMessage: MESSAGE });
    const [create] = await simRequests({ carrier: "twilio", to, path: "/Calls.json" });
    expect(create!.body).toMatchObject({ MachineDetection: "DetectMessageEnd", AsyncAmd: "true" });
    await answerTwilio(call, to);

    expect((await twilioAmd(call.sessionId, call.callId, "machine_end_beep")).status).toBe(204);
    const update = await eventually(async () =>
      (await simRequests({ carrier: "twilio", callId: call.callId })).find(
        (r) => typeof (r.body as Record<string, string>).Twiml === "string",
      ),
    );
    const twiml = (update.body as Record<string, string>).Twiml!;
    expect(twiml).toContain(`<Say>${MESSAGE}</Say><Hangup/>`);
    const left = await settled(call.id, (c) => c.machineOutcome === "voicemail_left");
    const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(MESSAGE)))]
      .map((byte) => byte.toString(16).padStart(2, "0"))
      .join("");
    expect(left).toMatchObject({
      machineDetection: "voicemail",
      answeredBy: "machine",
      voicemail: { chars: MESSAGE.length, sha256: digest },
    });
    // The message's text is in no event of the call's history.
    expect(JSON.stringify(left.events)).not.toContain("Acme Supplies");
    expect(await simulatorConnections(call.key)).toHaveLength(0);
  });

  it("refuses a malformed verdict with 400 and records nothing", async () => {
    const to = randomE164();
    const call = await place({ to, machineDetection: "hangup" });
    expect((await twilioAmd(call.sessionId, call.callId, "robot")).status).toBe(400);
    expect((await twilioAmd(call.sessionId, "CA-not-a-sid", "human")).status).toBe(400);
    // Unsigned: the guard refuses it before anything reads it.
    const unsigned = await postTwilio(
      `/telephony/twilio/amd?sessionId=${call.sessionId}`,
      { AccountSid: env.TWILIO_ACCOUNT_SID, CallSid: call.callId, AnsweredBy: "machine_start" },
      { signature: "bm90IGEgc2lnbmF0dXJl" },
    );
    expect(unsigned.status).toBe(403);
    const after = await callDetail(token, call.id);
    expect(after).toMatchObject({ answeredBy: null, machineOutcome: null });
  });

  it("a verdict after the call ended changes nothing", async () => {
    const to = randomE164();
    const call = await place({ to, machineDetection: "hangup" });
    await answerTwilio(call, to);
    const extra = { From: twilioNumber, Direction: "outbound-api" };
    expect((await twilioStatus(call.callId, to, "completed", { sequence: 3, sessionId: call.sessionId, extra })).status).toBe(204);
    expect((await twilioAmd(call.sessionId, call.callId, "machine_start")).status).toBe(204);
    const after = await callDetail(token, call.id);
    expect(after).toMatchObject({ status: "completed", answeredBy: null, machineOutcome: null });
    const updates = (await simRequests({ carrier: "twilio", callId: call.callId })).filter((r) => r.path.endsWith(`${call.callId}.json`));
    expect(updates).toHaveLength(0);
  });
});

describe("Telnyx", () => {
  it("asks for detection; a person gets the agent (its provider dialled only then), not_sure counts as a person", async () => {
    for (const result of ["human", "not_sure"]) {
      const to = randomE164();
      const call = await place({ to, from: telnyxNumber, provider: "openai", machineDetection: "hangup" });
      const [dial] = await simRequests({ carrier: "telnyx", to, path: "/v2/calls" });
      expect(dial!.body).toMatchObject({ answering_machine_detection: "detect" });
      const webhook = telnyxWebhook(call, to);
      expect((await webhook("call.answered")).status).toBe(200);
      expect(await simulatorConnections(call.key)).toHaveLength(0);
      expect((await webhook("call.machine.detection.ended", { result })).status).toBe(200);
      await eventually(async () => (await simulatorConnections(call.key)).length === 1);
      const done = await settled(call.id, (c) => c.machineOutcome === "agent");
      expect(done).toMatchObject({ answeredBy: result === "human" ? "human" : "unknown", machineOutcome: "agent" });
    }
  });

  it("hangs up on a machine through Call Control", async () => {
    const to = randomE164();
    const call = await place({ to, from: telnyxNumber, machineDetection: "hangup" });
    const webhook = telnyxWebhook(call, to);
    expect((await webhook("call.answered")).status).toBe(200);
    expect((await webhook("call.machine.detection.ended", { result: "machine" })).status).toBe(200);
    await eventually(async () => (await simRequests({ carrier: "telnyx", callId: call.callId, path: "/actions/hangup" }))[0]);
    const done = await settled(call.id, (c) => c.status === "completed");
    expect(done).toMatchObject({ answeredBy: "machine", machineOutcome: "machine_hangup" });
    expect(await simulatorConnections(call.key)).toHaveLength(0);
  });

  it("leaves the voicemail once the greeting ends: speak, then hangup on call.speak.ended; a duplicate event acts once", async () => {
    const to = randomE164();
    const call = await place({ to, from: telnyxNumber, machineDetection: "voicemail", voicemailMessage: MESSAGE });
    const [dial] = await simRequests({ carrier: "telnyx", to, path: "/v2/calls" });
    expect(dial!.body).toMatchObject({ answering_machine_detection: "greeting_end" });
    const webhook = telnyxWebhook(call, to);
    expect((await webhook("call.answered")).status).toBe(200);
    expect((await webhook("call.machine.detection.ended", { result: "machine" })).status).toBe(200);
    // A machine, its greeting still playing: nothing is said yet.
    expect((await simRequests({ carrier: "telnyx", callId: call.callId })).filter((r) => r.path.includes("/actions/"))).toHaveLength(0);

    const greetingEnded = crypto.randomUUID();
    expect((await webhook("call.machine.greeting.ended", { result: "beep_detected" }, greetingEnded)).status).toBe(200);
    expect((await webhook("call.machine.greeting.ended", { result: "beep_detected" }, greetingEnded)).status).toBe(200);
    const speak = await eventually(async () => (await simRequests({ carrier: "telnyx", callId: call.callId, path: "/actions/speak" }))[0]);
    expect(speak.body).toMatchObject({ payload: MESSAGE });
    expect((await simRequests({ carrier: "telnyx", callId: call.callId, path: "/actions/hangup" })).length).toBe(0);

    expect((await webhook("call.speak.ended", { status: "completed" })).status).toBe(200);
    await eventually(async () => (await simRequests({ carrier: "telnyx", callId: call.callId, path: "/actions/hangup" }))[0]);
    const done = await settled(call.id, (c) => c.status === "completed");
    expect(done).toMatchObject({ answeredBy: "machine", machineOutcome: "voicemail_left", voicemail: { chars: MESSAGE.length } });
    expect(await simRequests({ carrier: "telnyx", callId: call.callId, path: "/actions/speak" })).toHaveLength(1);
    expect(await simulatorConnections(call.key)).toHaveLength(0);
  });

  it("refuses a machine event with an undocumented result (400)", async () => {
    const to = randomE164();
    const call = await place({ to, from: telnyxNumber, machineDetection: "hangup" });
    const webhook = telnyxWebhook(call, to);
    expect((await webhook("call.machine.detection.ended", { result: "robot" })).status).toBe(400);
    expect((await webhook("call.machine.greeting.ended", {})).status).toBe(400);
    expect(await callDetail(token, call.id)).toMatchObject({ answeredBy: null, machineOutcome: null });
  });
});

describe("a verdict that never comes", () => {
  /** The call's object, its deadline read, then moved to now (as if the time went by) and its alarm run. */
  async function passDeadline(sessionId: string, answeredAt: string) {
    const stub = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));
    const due = await runInDurableObject(stub, (_instance, state) => state.storage.kv.get<number>(VERDICT_DEADLINE_KEY));
    expect(due).toBe(Date.parse(answeredAt) + VERDICT_TIMEOUT_MS);
    // Before the deadline the alarm changes nothing.
    await runDurableObjectAlarm(stub);
    await passStoredDeadline(stub, VERDICT_DEADLINE_KEY);
    await runDurableObjectAlarm(stub);
  }

  it("Twilio: a call answered with no verdict gets the agent at the deadline, as if the carrier were not sure", async () => {
    const to = randomE164();
    const call = await place({ to, provider: "openai", machineDetection: "hangup" });
    await answerTwilio(call, to);
    const answered = await settled(call.id, (c) => c.answeredAt !== null);
    expect(await simulatorConnections(call.key)).toHaveLength(0);
    await passDeadline(call.sessionId, answered.answeredAt!);
    await eventually(async () => (await simulatorConnections(call.key)).length === 1);
    expect(await settled(call.id, (c) => c.machineOutcome !== null)).toMatchObject({ answeredBy: "unknown", machineOutcome: "agent" });
  });

  it("Telnyx: a machine whose beep is never reported hears the voicemail at the deadline", async () => {
    const to = randomE164();
    const call = await place({ to, from: telnyxNumber, machineDetection: "voicemail", voicemailMessage: MESSAGE });
    const webhook = telnyxWebhook(call, to);
    expect((await webhook("call.answered")).status).toBe(200);
    expect((await webhook("call.machine.detection.ended", { result: "machine" })).status).toBe(200);
    const answered = await settled(call.id, (c) => c.answeredBy === "machine");
    await passDeadline(call.sessionId, answered.answeredAt!);
    const speak = await eventually(async () => (await simRequests({ carrier: "telnyx", callId: call.callId, path: "/actions/speak" }))[0]);
    expect(speak.body).toMatchObject({ payload: MESSAGE });
  });
});

describe("POST /api/v1/calls", () => {
  it("validates machineDetection and voicemailMessage", async () => {
    const post = (body: Record<string, unknown>) => api("/api/v1/calls", { method: "POST", token, body: { to: randomE164(), ...body } });
    const missing = await post({ machineDetection: "voicemail" });
    expect(missing.status).toBe(422);
    expect((await errorOf(missing)).code).toBe("voicemail_message_required");
    const unused = await post({ machineDetection: "hangup", voicemailMessage: "Hi" });
    expect(unused.status).toBe(422);
    expect((await errorOf(unused)).code).toBe("voicemail_message_unused");
    expect((await post({ machineDetection: "shout" })).status).toBe(400);
    expect((await post({ machineDetection: "voicemail", voicemailMessage: "   " })).status).toBe(400);
    expect((await post({ machineDetection: "voicemail", voicemailMessage: "x".repeat(1_001) })).status).toBe(400);
    // Without detection a call is placed as before: nothing asked of the carrier, nothing recorded.
    const to = randomE164();
    const plain = await place({ to });
    const [create] = await simRequests({ carrier: "twilio", to, path: "/Calls.json" });
    expect(create!.body).not.toHaveProperty("MachineDetection");
    expect(await callDetail(token, plain.id)).toMatchObject({
      machineDetection: null,
      answeredBy: null,
      machineOutcome: null,
      voicemail: null,
    });
  });
});
