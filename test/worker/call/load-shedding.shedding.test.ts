import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { BUSY_MESSAGE } from "../../../workers/carriers/carrier.ts";
import { REGISTRY_NAME } from "../../../workers/shared/provider-health.ts";
import { sleep } from "../../../workers/shared/sleep.ts";
import { holders, twilioVoice } from "../support/admission.ts";
import { callByCarrierId, callTraces, tenantWithNumbers } from "../support/calls.ts";
import { eventually, postTelnyx, randomCallControlId, randomE164, simRequests, telnyxEnvelope } from "../support/carriers.ts";
import { api, errorOf } from "../support/identity.ts";
import { openStream, type TwilioMediaCaller, twilioCallWith } from "../support/media-caller.ts";
import { simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";

/**
 * Load shedding, in the worker-shedding project (CALL_SHEDDING_LATENESS_MS = 500, vitest.config.ts): while the isolate
 * the calls' objects run in is that far behind, a new inbound call hears the busy message and is recorded `failed`,
 * `overloaded`, and a new outbound call or web session answers 503 `overloaded`, with no slot taken and nothing
 * dialled. The load is real: this test's own isolate (the Worker's and the objects') kept busy in slices of about
 * 1.5 s of JavaScript, as a thread carrying too many calls is; or real media streams whose frames arrive later than
 * their own timestamps say, as a carrier's do when they wait in that thread's queue.
 */

let sink = 0;
function spin(iterations: number): number {
  let x = sink;
  for (let i = 0; i < iterations; i++) x = (x * 33 + i) % 1_000_003;
  return x;
}

/** The iterations of `spin` that keep the thread for about `ms` (workerd's clock moves only between events). */
async function iterationsFor(ms: number): Promise<number> {
  for (let iterations = 1_000_000; ; iterations *= 2) {
    await sleep(0);
    const before = Date.now();
    sink = spin(iterations);
    await sleep(0);
    const took = Date.now() - before;
    if (took >= 50) return Math.ceil((iterations * ms) / took);
  }
}

/**
 * Keeps the isolate's thread busy, letting one poll of its sockets through between slices, until the answer is called;
 * that stops it and waits until a long wait no longer counts (a second: media/isolate-lateness.ts), so the next test
 * starts on a caught-up isolate. Slices three times the limit leave room for a calibration the machine's load threw.
 */
async function overloadIsolate(): Promise<() => Promise<void>> {
  const iterations = await iterationsFor(1_500);
  let on = true;
  const running = (async () => {
    while (on) {
      sink = spin(iterations);
      await sleep(0);
    }
  })();
  return async () => {
    on = false;
    await running;
    await sleep(1_500);
  };
}

let release: (() => Promise<void>) | null = null;
afterEach(async () => {
  await release?.();
  release = null;
});

/** A Twilio call listening (no caller speech) on `provider`: admitted, its stream not yet open. */
async function admittedCall(provider: "local" | "gemini" = "local") {
  const key = uniqueKey("shedding");
  return { ...(await twilioCallWith(provider, key, "Listen.")), key };
}

/** The call's stream, open with a second of audio sent at once. */
async function listen(call: Awaited<ReturnType<typeof admittedCall>>): Promise<TwilioMediaCaller> {
  const caller = await openStream(call);
  await caller.silence(1_000);
  return caller;
}

const listeningCall = async (provider?: "local" | "gemini") => listen(await admittedCall(provider));

/**
 * The stream's audio from now on in real time (a frame every 20 ms). After a second at once and a pause of 2.5 s, each
 * frame comes about 1.7 s later by its timestamp than the first second's did: as a carrier's frames are read when they
 * wait in the isolate's queue.
 */
function inRealTime(caller: TwilioMediaCaller, ms = 12_000): void {
  void caller.speak(new Uint8Array((ms / 20) * 160).fill(0xff), { framesPerTick: 1, tickMs: 20 });
}

describe("load shedding", () => {
  it("an inbound call arriving while the isolate is seconds behind hears busy, is recorded overloaded and takes no slot; once it catches up, calls are admitted", async () => {
    const { tenantId, token, numbers } = await tenantWithNumbers([{ carrier: "twilio" }]);
    release = await overloadIsolate();
    const shed = await twilioVoice(numbers[0]!);
    await release();
    release = null;

    expect(shed.verdict).toBe("busy");
    expect(shed.twiml).toMatch(/<Say>[^<]+<\/Say><Hangup\/><\/Response>$/);
    expect(await holders(tenantId)).toEqual([]);
    const call = await eventually(async () => {
      const found = await callByCarrierId(token, shed.callSid).catch(() => null);
      return found?.status === "failed" && found;
    });
    expect(call.failureReason).toBe("overloaded");
    expect(call.events.some((e) => e.event === "admission.shed" && e.source === "system" && e.toStatus === "failed")).toBe(true);

    // The isolate has caught up (the release waited out the second a long wait counts for): the next call goes through.
    const admitted = await twilioVoice(numbers[0]!);
    expect(admitted.verdict).toBe("admitted");
    expect(await holders(tenantId)).toEqual([admitted.sessionId]);
  }, 90_000);

  it("a Telnyx call arriving meanwhile is answered without media, told it is busy and hung up", async () => {
    const { tenantId, token, numbers } = await tenantWithNumbers([{ carrier: "telnyx" }]);
    const id = randomCallControlId();
    release = await overloadIsolate();
    const initiated = telnyxEnvelope("call.initiated", {
      call_control_id: id,
      direction: "incoming",
      from: "+14155550100",
      to: numbers[0],
      state: "parked",
    });
    expect((await postTelnyx(initiated)).status).toBe(200);
    const answer = await eventually(async () => (await simRequests({ carrier: "telnyx", callId: id, path: "/actions/answer" }))[0]);
    await release();
    release = null;

    expect((answer.body as { stream_url?: string }).stream_url).toBeUndefined();
    const call = await callByCarrierId(token, id);
    expect(call.failureReason).toBe("overloaded");
    const clientState = btoa(JSON.stringify({ s: call.sessionId }));
    await postTelnyx(telnyxEnvelope("call.answered", { call_control_id: id, client_state: clientState }));
    const speak = await eventually(async () => (await simRequests({ carrier: "telnyx", callId: id, path: "/actions/speak" }))[0]);
    expect(speak.body).toMatchObject({ payload: BUSY_MESSAGE });
    await postTelnyx(telnyxEnvelope("call.speak.ended", { call_control_id: id, client_state: clientState }));
    await eventually(async () => (await simRequests({ carrier: "telnyx", callId: id, path: "/actions/hangup" }))[0]);
    expect(await holders(tenantId)).toEqual([]);
  }, 90_000);

  it("streams whose frames are read late by the carrier's own clock shed new calls, once at least three say so", async () => {
    const { numbers } = await tenantWithNumbers([{ carrier: "twilio" }]);
    const [first, second] = await Promise.all([listeningCall(), listeningCall()]);
    await sleep(2_500);
    inRealTime(first);
    inRealTime(second);
    await sleep(1_500);
    // Two late streams are not enough to speak for the isolate (one carrier's clock could be wrong).
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("admitted");
    const third = await listeningCall();
    await sleep(2_500);
    inRealTime(third);
    await sleep(1_500);
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("busy");
  }, 90_000);

  it("a stream that starts while the isolate is behind counts as that far behind, so streams started late do not outvote the backlog", async () => {
    const { numbers } = await tenantWithNumbers([{ carrier: "twilio" }]);
    // Four calls admitted while the isolate keeps up; their streams open only once it is behind.
    const joining = await Promise.all(Array.from({ length: 4 }, () => admittedCall()));
    const late = await Promise.all([listeningCall(), listeningCall(), listeningCall()]);
    await sleep(2_500);
    for (const caller of late) inRealTime(caller);
    await sleep(1_500);
    // In real time by their own clocks: measured only against themselves, the four would read 0 ms late, and four of
    // seven would take the median to 0 — a backlog hidden by the calls admitted into it.
    const joined = await Promise.all(joining.map(listen));
    for (const caller of joined) inRealTime(caller, 6_000);
    await sleep(1_500);
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("busy");
  }, 90_000);

  it("provider outcomes seen while the isolate is behind are withheld from the fleet's registry; once it caught up they are sent", async () => {
    const registry = env.PROVIDER_HEALTH.get(env.PROVIDER_HEALTH.idFromName(REGISTRY_NAME));
    const geminiSamples = async () => (await registry.snapshot()).find((entry) => entry.provider === "gemini")!.samples;
    const up = await admittedCall();
    const late = await Promise.all([listen(up), listeningCall(), listeningCall()]);
    await sleep(2_500);
    for (const caller of late) inRealTime(caller, 30_000);
    await sleep(1_500);
    const before = await geminiSamples();

    // The call already up switches to gemini meanwhile: the connect succeeds, and is not reported.
    const switched = await api(`/api/v1/sessions/${up.sessionId}/switch-provider`, {
      method: "POST",
      token: up.token,
      body: { provider: "gemini", immediate: true },
    });
    expect(switched.status).toBe(200);
    expect((await simulatorConnections(up.key)).filter((c) => c.provider === "gemini" && c.refusedWithStatus === null)).toHaveLength(1);
    // A success is sent within 10 s (reporter.ts).
    await sleep(11_000);
    expect(await geminiSamples()).toBe(before);

    for (const caller of late) caller.close();
    await sleep(3_500);
    // Caught up: a call's gemini connect reaches the registry. (One slow poll of a busy machine, 100 ms, withholds
    // what follows it for a second: a few calls, not one.)
    for (let tries = 0; tries < 3 && (await geminiSamples()) === before; tries++) {
      await listeningCall("gemini");
      await sleep(11_000);
    }
    expect(await geminiSamples()).toBeGreaterThan(before);
  }, 90_000);

  it("an outbound call and a web session asked for meanwhile answer 503 overloaded with Retry-After, and start nothing", async () => {
    const { tenantId, token } = await tenantWithNumbers([{ carrier: "twilio" }]);
    const before = await callTraces();
    release = await overloadIsolate();
    const placed = await api("/api/v1/calls", { method: "POST", token, body: { to: randomE164() } });
    const web = await api("/api/v1/sessions", { method: "POST", token, body: { provider: "local" } });
    await release();
    release = null;

    for (const refused of [placed, web]) {
      expect(refused.status).toBe(503);
      expect(refused.headers.get("Retry-After")).toBe("5");
      expect((await errorOf(refused)).code).toBe("overloaded");
    }
    expect(await holders(tenantId)).toEqual([]);
    // No session, call or event was written.
    expect(await callTraces()).toEqual(before);
  }, 90_000);
});
