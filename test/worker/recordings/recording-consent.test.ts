import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { CONSENT_DEADLINE_KEY } from "../../../durable-objects/call/consent-first.ts";
import { deriveSessionId } from "../../../workers/carriers/session-routing.ts";
import { rms } from "../support/audio-signals.ts";
import { passStoredDeadline, tenantWithNumbers, twilioStatus } from "../support/calls.ts";
import {
  eventually,
  parseStreamTwiml,
  postTelnyx,
  postTwilio,
  randomCallControlId,
  randomCallSid,
  simFault,
  simRequests,
  telnyxEnvelope,
  twilioCallParams,
} from "../support/carriers.ts";
import { api } from "../support/identity.ts";
import { openStream } from "../support/media-caller.ts";
import { putScenario, uniqueKey } from "../support/provider-simulator.ts";
import { recordedWav, silenceBytes, toneBytes } from "../support/recordings.ts";
import { type TelnyxAnswer, TelnyxMediaCaller } from "../support/telnyx-media-caller.ts";

/**
 * Consent on a carrier that answers by command (Telnyx), through the real Worker, the call's object and the fake
 * Telnyx API: a recorded call is answered without media, the consent is said, and only once Telnyx reports it said
 * (or could not say it, or never reports) does the stream — the agent and the recording with it — start.
 */

const CONSENT = "This call is recorded for quality.";

/** A tenant recording as asked, with a Telnyx number, and an inbound call to it (correlation id `key`). */
async function telnyxCall(key: string, recording: "on" | "off", callControlId = randomCallControlId()) {
  const { token, numbers } = await tenantWithNumbers([{ carrier: "telnyx", provider: "openai" }]);
  const patched = await api("/api/v1/tenant/settings", { method: "PATCH", token, body: { recording, consentMessage: CONSENT } });
  expect(patched.status).toBe(200);
  const initiated = telnyxEnvelope("call.initiated", {
    call_control_id: callControlId,
    direction: "incoming",
    from: "+14155550100",
    to: numbers[0],
    state: "parked",
  });
  expect((await postTelnyx(initiated, { headers: { "X-Correlation-ID": key } })).status).toBe(200);
  const sessionId = await deriveSessionId("telnyx", callControlId);
  const clientState = btoa(JSON.stringify({ s: sessionId }));
  const commands = (action: string) => simRequests({ carrier: "telnyx", callId: callControlId, path: `/actions/${action}` });
  const answer = await eventually(async () => (await commands("answer"))[0]);
  /** A Call Control webhook for this call, as Telnyx sends it (the client_state the platform set). */
  const webhook = async (eventType: string, payload: Record<string, unknown> = {}) =>
    expect(
      (await postTelnyx(telnyxEnvelope(eventType, { call_control_id: callControlId, client_state: clientState, ...payload }))).status,
    ).toBe(200);
  return { token, callControlId, sessionId, answer: answer.body as Partial<TelnyxAnswer>, commands, webhook };
}

const stubOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));

describe("consent on Telnyx", () => {
  it("a recorded call: answered without media, the consent said, the stream only once it has been said; the WAV is written", async () => {
    const key = uniqueKey("telnyx-consent");
    await putScenario(key, { replies: ["Hello, how can I help?"] });
    const call = await telnyxCall(key, "on");
    // No stream with the answer: nothing of the agent can reach the caller yet.
    expect(call.answer.stream_url).toBeUndefined();
    await call.webhook("call.answered");
    const speak = await eventually(async () => (await call.commands("speak"))[0]);
    expect(speak.body).toMatchObject({ payload: CONSENT });
    await call.webhook("call.speak.started");
    expect(await call.commands("streaming_start")).toEqual([]);

    await call.webhook("call.speak.ended", { status: "completed" });
    const start = await eventually(async () => (await call.commands("streaming_start"))[0]);
    const target = start.body as TelnyxAnswer;
    expect(target).toMatchObject({ stream_codec: "PCMU", stream_bidirectional_mode: "rtp", stream_bidirectional_codec: "PCMU" });
    // A repeated report starts nothing twice.
    await call.webhook("call.speak.ended", { status: "completed" });

    const caller = await TelnyxMediaCaller.open(target.stream_url, call.callControlId, "PCMU");
    await call.webhook("streaming.started");
    await caller.speak(toneBytes(1000, 800));
    await caller.speak(silenceBytes(1200));
    await caller.until(() => caller.payloads.length >= 25);
    await caller.speak(silenceBytes(2000));
    await call.webhook("call.hangup", { hangup_cause: "normal_clearing", hangup_source: "caller" });

    expect(await call.commands("streaming_start")).toHaveLength(1);
    const wav = await recordedWav(call.token, call.sessionId);
    expect(wav.channels).toBe(2);
    expect(rms(wav.left.subarray(0, 8 * 800))).toBeGreaterThan(3000);
    // The agent, heard after the consent (the stream began after it), is on the right.
    expect(rms(wav.right)).toBeGreaterThan(100);
  });

  it("recording off: answered with the stream as before, nothing said", async () => {
    const call = await telnyxCall(uniqueKey("telnyx-unrecorded"), "off");
    expect(call.answer.stream_url).toMatch(/^wss:/);
    await call.webhook("call.answered");
    expect(await call.commands("speak")).toEqual([]);
    expect(await call.commands("streaming_start")).toEqual([]);
  });

  it("a consent the carrier could not say: the stream starts at once", async () => {
    const key = uniqueKey("telnyx-say-failed");
    const callControlId = randomCallControlId();
    // Every try of the speak fails (the object retries twice).
    await simFault({ match: { callId: callControlId, path: "/actions/speak" }, status: 500, times: 3 });
    const call = await telnyxCall(key, "on", callControlId);
    expect(call.answer.stream_url).toBeUndefined();
    const start = await eventually(async () => (await call.commands("streaming_start"))[0]);
    expect((start.body as TelnyxAnswer).stream_url).toMatch(/^wss:/);
  });

  it("a consent never reported said: the object's alarm starts the stream at its deadline", async () => {
    const call = await telnyxCall(uniqueKey("telnyx-never-said"), "on");
    await eventually(async () => (await call.commands("speak"))[0]);
    const stub = stubOf(call.sessionId);
    // Before the deadline the alarm leaves the call alone…
    await runDurableObjectAlarm(stub);
    expect(await call.commands("streaming_start")).toEqual([]);
    // …and once it has passed (moved to now, as if the time went by), starts the stream.
    await passStoredDeadline(stub, CONSENT_DEADLINE_KEY);
    await runDurableObjectAlarm(stub);
    await eventually(async () => (await call.commands("streaming_start"))[0]);
    // A report arriving after that starts nothing more.
    await call.webhook("call.speak.ended", { status: "completed" });
    expect(await call.commands("streaming_start")).toHaveLength(1);
  });
});

/**
 * A Twilio number with its own `recording` in a tenant set the other way, and an inbound call to it: the TwiML, and
 * the session's recording once the call ended.
 */
async function numberOverride(tenant: "on" | "off", number: "on" | "off") {
  const { token, numbers } = await tenantWithNumbers([{ carrier: "twilio", provider: "local" }]);
  expect(
    (await api("/api/v1/tenant/settings", { method: "PATCH", token, body: { recording: tenant, consentMessage: CONSENT } })).status,
  ).toBe(200);
  const listed = (await (await api("/api/v1/phone-numbers", { token })).json()) as { items: Array<{ id: string; recording: unknown }> };
  expect(listed.items[0]!.recording).toBeNull();
  const patched = await api(`/api/v1/phone-numbers/${listed.items[0]!.id}`, { method: "PATCH", token, body: { recording: number } });
  expect(patched.status).toBe(200);
  expect(await patched.json()).toMatchObject({ recording: number });
  const callSid = randomCallSid();
  const response = await postTwilio("/telephony/twilio/voice", twilioCallParams(callSid, numbers[0]!, "ringing"));
  const twiml = await response.text();
  const stream = parseStreamTwiml(twiml);
  const call = { callSid, number: numbers[0]!, streamUrl: stream.url, mediaToken: stream.token };
  const caller = await openStream(call, 4);
  await caller.speak(toneBytes(440, 400));
  await caller.speak(silenceBytes(600));
  expect((await twilioStatus(callSid, numbers[0]!, "completed", { sequence: 5 })).status).toBe(204);
  return { token, twiml, sessionId: stream.url.split("/").at(-1)! };
}

describe("a number's own recording setting", () => {
  it("a number set `on` in a tenant that does not record: recorded, with the tenant's consent said first", async () => {
    const call = await numberOverride("off", "on");
    expect(call.twiml).toContain(`<Say>${CONSENT}</Say>`);
    const wav = await recordedWav(call.token, call.sessionId);
    expect(rms(wav.left.subarray(0, 8 * 400))).toBeGreaterThan(3000);
  });

  it("a number set `off` in a tenant that records: no consent, no recording", async () => {
    const call = await numberOverride("on", "off");
    expect(call.twiml).not.toContain("<Say>");
    await eventually(async () => {
      const response = await api("/api/v1/calls?limit=1", { token: call.token });
      return ((await response.json()) as { items: Array<{ status: string }> }).items[0]?.status === "completed";
    });
    expect((await api(`/api/v1/sessions/${call.sessionId}/recording`, { token: call.token })).status).toBe(404);
  });

  it("refuses a recording setting that is neither on, off nor null", async () => {
    const { token } = await tenantWithNumbers([{ carrier: "twilio" }]);
    const listed = (await (await api("/api/v1/phone-numbers", { token })).json()) as { items: Array<{ id: string }> };
    const patched = await api(`/api/v1/phone-numbers/${listed.items[0]!.id}`, { method: "PATCH", token, body: { recording: "yes" } });
    expect(patched.status).toBe(400);
  });
});
