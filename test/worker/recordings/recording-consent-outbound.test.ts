import { describe, expect, it } from "vitest";
import { rms } from "../support/audio-signals.ts";
import { callDetail, tenantWithNumbers, twilioStatus } from "../support/calls.ts";
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
import { api } from "../support/identity.ts";
import { putScenario, uniqueKey } from "../support/provider-simulator.ts";
import { recordedWav, silenceBytes, toneBytes } from "../support/recordings.ts";
import { type TelnyxAnswer, TelnyxMediaCaller } from "../support/telnyx-media-caller.ts";

/**
 * Consent on OUTBOUND calls (`POST /api/v1/calls`), through the real Worker, the call's object and the fake carrier
 * APIs: a recorded Telnyx call is dialled without its stream; once the callee answers (and, with machine detection,
 * is known to be a person) the consent is said, and only then does the stream — the agent and the recording — start.
 */

const CONSENT = "This call is recorded for quality.";

interface Setup {
  carrier?: "telnyx" | "twilio";
  tenant: "on" | "off";
  /** The calling number's own setting (absent: none, the tenant's applies). */
  number?: "on" | "off";
  machineDetection?: "hangup";
}

/** A tenant recording as asked, with one number on `carrier`, placing a call from it. */
async function outbound({ carrier = "telnyx", tenant, number, machineDetection }: Setup) {
  const { token, numbers } = await tenantWithNumbers([{ carrier, provider: "openai" }]);
  const from = numbers[0]!;
  const settings = await api("/api/v1/tenant/settings", { method: "PATCH", token, body: { recording: tenant, consentMessage: CONSENT } });
  expect(settings.status).toBe(200);
  if (number) {
    const listed = (await (await api("/api/v1/phone-numbers", { token })).json()) as { items: Array<{ id: string }> };
    const patched = await api(`/api/v1/phone-numbers/${listed.items[0]!.id}`, { method: "PATCH", token, body: { recording: number } });
    expect(patched.status).toBe(200);
  }
  const key = uniqueKey("outbound-consent");
  await putScenario(key, { replies: ["Hello, this is Acme calling."] });
  const to = randomE164();
  const body = { to, from, provider: "openai", ...(machineDetection && { machineDetection }) };
  const response = await api("/api/v1/calls", { method: "POST", token, body, headers: { "X-Correlation-ID": key } });
  expect(response.status).toBe(201);
  const placed = (await response.json()) as { id: string; sessionId: string };
  const callId = (await callDetail(token, placed.id)).carrierCallId!;
  return { token, from, to, callId, ...placed };
}

/** The Telnyx side of the call: its dial, its commands, and its webhooks (with the client_state the platform set). */
async function telnyxSide(call: Awaited<ReturnType<typeof outbound>>) {
  const [dial] = await simRequests({ carrier: "telnyx", to: call.to, path: "/v2/calls" });
  const commands = (action: string) => simRequests({ carrier: "telnyx", callId: call.callId, path: `/actions/${action}` });
  const webhook = async (type: string, payload: Record<string, unknown> = {}) => {
    const envelope = telnyxEnvelope(type, {
      call_control_id: call.callId,
      client_state: btoa(JSON.stringify({ s: call.sessionId })),
      direction: "outgoing",
      from: call.from,
      to: call.to,
      ...payload,
    });
    expect((await postTelnyx(envelope)).status).toBe(200);
  };
  return { dial: dial!.body as Partial<TelnyxAnswer> & Record<string, unknown>, commands, webhook };
}

/** The stream Telnyx opens once asked, a tone from the callee, the hangup: the session's WAV. */
async function streamAndRecord(call: Awaited<ReturnType<typeof outbound>>, side: Awaited<ReturnType<typeof telnyxSide>>) {
  const start = await eventually(async () => (await side.commands("streaming_start"))[0]);
  const callee = await TelnyxMediaCaller.open((start.body as TelnyxAnswer).stream_url, call.callId, "PCMU");
  await side.webhook("streaming.started");
  await callee.speak(toneBytes(1000, 800));
  await callee.speak(silenceBytes(1200));
  await callee.until(() => callee.payloads.length >= 25);
  await callee.speak(silenceBytes(2000));
  await side.webhook("call.hangup", { hangup_cause: "normal_clearing", hangup_source: "callee" });
  const wav = await recordedWav(call.token, call.sessionId);
  expect(rms(wav.left.subarray(0, 8 * 800))).toBeGreaterThan(3000);
  expect(rms(wav.right)).toBeGreaterThan(100);
}

describe("consent on outbound Telnyx calls", () => {
  it("a recorded call is dialled without its stream; answered, the consent is said, then the stream starts; the WAV is written", async () => {
    const call = await outbound({ tenant: "on" });
    const side = await telnyxSide(call);
    expect(side.dial.stream_url).toBeUndefined();
    await side.webhook("call.answered");
    const speak = await eventually(async () => (await side.commands("speak"))[0]);
    expect(speak.body).toMatchObject({ payload: CONSENT });
    expect(await side.commands("streaming_start")).toEqual([]);
    await side.webhook("call.speak.ended", { status: "completed" });
    await streamAndRecord(call, side);
    // Said once, streamed once: the later webhooks repeated nothing.
    expect(await side.commands("speak")).toHaveLength(1);
    expect(await side.commands("streaming_start")).toHaveLength(1);
  });

  it("a call not recorded streams from the dial as before, nothing said", async () => {
    const call = await outbound({ tenant: "off" });
    const side = await telnyxSide(call);
    expect(side.dial.stream_url).toMatch(/^wss:/);
    await side.webhook("call.answered");
    await side.webhook("streaming.started");
    expect(await side.commands("speak")).toEqual([]);
    expect(await side.commands("streaming_start")).toEqual([]);
  });

  it("a calling number set `on` in a tenant that does not record: the consent first, then a recorded stream", async () => {
    const call = await outbound({ tenant: "off", number: "on" });
    const side = await telnyxSide(call);
    expect(side.dial.stream_url).toBeUndefined();
    await side.webhook("call.answered");
    const speak = await eventually(async () => (await side.commands("speak"))[0]);
    expect(speak.body).toMatchObject({ payload: CONSENT });
    await side.webhook("call.speak.ended", { status: "completed" });
    await streamAndRecord(call, side);
  });

  it("with machine detection, a machine hears no consent (it is hung up on); a person hears it once the verdict is in", async () => {
    const machine = await outbound({ tenant: "on", machineDetection: "hangup" });
    const machineSide = await telnyxSide(machine);
    expect(machineSide.dial).toMatchObject({ answering_machine_detection: "detect" });
    expect(machineSide.dial.stream_url).toBeUndefined();
    await machineSide.webhook("call.answered");
    await machineSide.webhook("call.machine.detection.ended", { result: "machine" });
    await eventually(async () => (await machineSide.commands("hangup"))[0]);
    expect(await machineSide.commands("speak")).toEqual([]);
    expect(await machineSide.commands("streaming_start")).toEqual([]);

    const person = await outbound({ tenant: "on", machineDetection: "hangup" });
    const personSide = await telnyxSide(person);
    await personSide.webhook("call.answered");
    // Nothing is said while the detection listens.
    expect(await personSide.commands("speak")).toEqual([]);
    await personSide.webhook("call.machine.detection.ended", { result: "human" });
    const speak = await eventually(async () => (await personSide.commands("speak"))[0]);
    expect(speak.body).toMatchObject({ payload: CONSENT });
    await personSide.webhook("call.speak.ended", { status: "completed" });
    await eventually(async () => (await personSide.commands("streaming_start"))[0]);
  });
});

describe("consent on outbound Twilio calls", () => {
  // Twilio fetches the answered call's TwiML from the voice webhook, whose answer already says a recorded call's consent.
  it.each([
    { tenant: "on", number: undefined },
    { tenant: "off", number: "on" },
  ] as const)(
    "recording $tenant, calling number $number: the answered call's TwiML says the consent before its stream",
    async ({ tenant, number }) => {
      const call = await outbound({ carrier: "twilio", tenant, ...(number && { number }) });
      const extra = { From: call.from, Direction: "outbound-api" };
      expect((await twilioStatus(call.callId, call.to, "in-progress", { sequence: 2, sessionId: call.sessionId, extra })).status).toBe(204);
      const voice = await postTwilio(
        `/telephony/twilio/voice?sessionId=${call.sessionId}`,
        twilioCallParams(call.callId, call.to, "in-progress", extra),
      );
      const twiml = await voice.text();
      expect(twiml).toContain(`<Say>${CONSENT}</Say>`);
      expect(twiml.indexOf("<Say>")).toBeLessThan(twiml.indexOf("<Connect>"));
      expect(parseStreamTwiml(twiml).url).toContain(call.sessionId);
    },
  );
});
