import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SERIES, type SeriesName } from "../../../workers/shared/observability/series.ts";
import { twilioStatus } from "../support/calls.ts";
import {
  eventually,
  postTelnyx,
  postTwilio,
  randomCallControlId,
  randomCallSid,
  telnyxEnvelope,
  twilioCallParams,
} from "../support/carriers.ts";
import { api } from "../support/identity.ts";
import { openStream, twilioCallWith, twilioOutboundCallWith } from "../support/media-caller.ts";
import { putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";
import { switchTo } from "../support/switching.ts";
import { telnyxCallWith } from "../support/telnyx-media-caller.ts";

/**
 * `/metrics` through the real Worker: known traffic through the real Worker and several call objects at once, then
 * the exact change in the fleet's counts once the objects have flushed (each within the push interval after its session
 * ends; a scrape first pushes what its own isolate holds).
 */
const TOKEN = "metrics-test-token-0123456789";

type Samples = Map<string, number>;

async function scrape(): Promise<{ text: string; samples: Samples }> {
  const response = await exports.default.fetch("https://switchboard.test/metrics", { headers: { Authorization: `Bearer ${TOKEN}` } });
  expect(response.status).toBe(200);
  expect(response.headers.get("Content-Type")).toContain("text/plain");
  const text = await response.text();
  const samples: Samples = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return { text, samples };
}

const delta = (before: Samples, after: Samples, key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);

const LONG_REPLY =
  "Thanks for calling about your invoice. I can see three open items on your account, the oldest from last March. " +
  "Let me walk you through each one in turn.";

/** An inbound OpenAI call whose caller talks over the agent once, is switched to the local engine, and hangs up. */
async function bargeInThenSwitch() {
  const key = uniqueKey("metrics-barge");
  await putScenario(key, { replies: [LONG_REPLY, "Of course, go ahead."], callerTranscripts: ["About my invoice.", "Wait."] });
  const call = await twilioCallWith("openai", key);
  await eventually(async () => (await simulatorConnections(key)).length === 1);
  const caller = await openStream(call, 1);
  await caller.say("hello");
  await caller.silence(600);
  await caller.until(() => caller.echoedMarks.length >= 10);
  await caller.say("interrupt");
  await caller.until(() => caller.count("clear") > 0);
  await caller.silence(400);
  expect((await switchTo(call.token, call.sessionId, { provider: "local" })).status).toBe(200);
  expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 9 })).status).toBe(204);
  return key;
}

/** An inbound call answered by the local engine: one turn, then the caller hangs up. */
async function localTurn() {
  const call = await twilioCallWith("local", uniqueKey("metrics-local"), "Greet the caller. Then listen.");
  const caller = await openStream(call);
  await caller.say("hello");
  await caller.silence(1000);
  await caller.until(() => caller.agentAudioBytes() >= 4_000);
  expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 9 })).status).toBe(204);
}

/** An outbound OpenAI call the agent ends with its end_call tool. */
async function agentHangsUp() {
  const key = uniqueKey("metrics-tool");
  await putScenario(key, { replies: ["Goodbye."], toolCalls: [{ onTurn: 1, name: "end_call", arguments: { reason: "done" } }] });
  const call = await twilioOutboundCallWith("openai", key);
  const caller = await openStream(call);
  await caller.say("goodbye");
  await caller.silence(600);
  await caller.until(() => caller.closeCode !== null);
  return key;
}

/** A Telnyx call answered, then hung up by the caller. */
async function telnyxCall() {
  const { callControlId } = await telnyxCallWith("local", "PCMU", uniqueKey("metrics-telnyx"));
  const sessionState = async (type: string, extra: Record<string, unknown> = {}) =>
    postTelnyx(telnyxEnvelope(type, { call_control_id: callControlId, ...extra }));
  expect((await sessionState("call.answered")).status).toBe(200);
  expect((await sessionState("call.hangup", { hangup_cause: "normal_clearing", hangup_source: "caller" })).status).toBe(200);
}

describe("GET /metrics", () => {
  it("refuses a missing or wrong bearer token with 401", async () => {
    const attempts: Array<Record<string, string>> = [
      {},
      { Authorization: "Bearer wrong-token-0123456789" },
      { Authorization: `Basic ${btoa(`x:${TOKEN}`)}` },
    ];
    for (const headers of attempts) {
      const response = await exports.default.fetch("https://switchboard.test/metrics", { headers });
      expect(response.status).toBe(401);
    }
  });

  it("counts known traffic exactly, across the Worker and several call objects at once", async () => {
    const before = (await scrape()).samples;

    // Refused carrier requests: two forged Twilio signatures, one Telnyx request from outside its ranges.
    for (let i = 0; i < 2; i++) {
      const forged = await postTwilio("/telephony/twilio/status", twilioCallParams(randomCallSid(), "+15550001111", "ringing"), {
        signature: "Zm9yZ2Vk",
      });
      expect(forged.status).toBe(403);
    }
    expect(
      (await postTelnyx(telnyxEnvelope("call.hangup", { call_control_id: randomCallControlId() }), { ip: "198.51.100.7" })).status,
    ).toBe(403);
    // Three requests no route knows.
    for (let i = 0; i < 3; i++) expect((await api("/api/v1/no-such-thing")).status).toBe(404);

    // Four calls at once, each in its own object.
    const [bargeKey, , toolKey] = await Promise.all([bargeInThenSwitch(), localTurn(), agentHangsUp(), telnyxCall()]);

    const calls = (samples: Samples) =>
      delta(before, samples, 'calls_total{carrier="twilio",direction="inbound",outcome="completed"}') +
      delta(before, samples, 'calls_total{carrier="twilio",direction="outbound",outcome="completed"}') +
      delta(before, samples, 'calls_total{carrier="telnyx",direction="inbound",outcome="completed"}');
    const after = await eventually(async () => {
      const { samples } = await scrape();
      // Every session has ended, so none is counted live any more: the gauges are withdrawn once each end's D1
      // drains settle, which may be a push after the one that carried the counters.
      const withdrawn = (samples.get('call_sessions_active{channel="phone"}') ?? 0) === 0;
      return calls(samples) === 4 && delta(before, samples, "session_duration_seconds_count") === 4 && withdrawn && samples;
    }, 100);

    expect(delta(before, after, 'calls_total{carrier="twilio",direction="inbound",outcome="completed"}')).toBe(2);
    expect(delta(before, after, 'calls_total{carrier="twilio",direction="outbound",outcome="completed"}')).toBe(1);
    expect(delta(before, after, 'calls_total{carrier="telnyx",direction="inbound",outcome="completed"}')).toBe(1);
    expect(delta(before, after, 'webhook_rejected_total{carrier="twilio",layer="signature"}')).toBe(2);
    expect(delta(before, after, 'webhook_rejected_total{carrier="telnyx",layer="ip_allowlist"}')).toBe(1);
    expect(delta(before, after, 'webhook_requests_total{carrier="twilio",outcome="rejected"}')).toBe(2);
    expect(delta(before, after, 'webhook_requests_total{carrier="telnyx",outcome="rejected"}')).toBe(1);
    expect(delta(before, after, 'http_requests_total{method="GET",route="unmatched",status="404"}')).toBe(3);
    expect(delta(before, after, 'provider_switches_total{from="openai",to="local",reason="manual",outcome="succeeded"}')).toBe(1);
    expect(delta(before, after, 'barge_in_total{provider="openai"}')).toBe(1);
    expect(delta(before, after, 'tool_calls_total{tool="end_call",outcome="completed"}')).toBe(1);
    // The simulator reports 100 input tokens per finished response: the count is exactly what it said.
    const responses = (await Promise.all([bargeKey, toolKey].map((key) => simulatorConnections(key))))
      .flat()
      .flatMap((connection) => connection.serverMessages.entries)
      .filter((message) => message.type === "response.done").length;
    expect(delta(before, after, 'llm_tokens_total{provider="openai",kind="input"}')).toBe(100 * responses);
    expect(delta(before, after, 'llm_tokens_total{provider="openai",kind="output"}')).toBeGreaterThan(0);
    expect(delta(before, after, 'media_frames_total{direction="in"}')).toBeGreaterThan(0);
    expect(delta(before, after, 'media_frames_total{direction="out"}')).toBeGreaterThan(0);
    expect(delta(before, after, 'media_frame_delay_seconds_count{direction="in"}')).toBeGreaterThan(0);
    expect(delta(before, after, 'media_frame_delay_seconds_count{direction="out"}')).toBeGreaterThan(0);
    expect(delta(before, after, 'ai_provider_requests_total{provider="openai",status="ok"}')).toBe(2);
    // Turns answered by the OpenAI calls went into the turn latency histograms (the caller heard the barge-in call's).
    expect(delta(before, after, 'ai_provider_latency_seconds_count{provider="openai"}')).toBeGreaterThan(0);
    expect(delta(before, after, 'ear_latency_seconds_count{provider="openai"}')).toBeGreaterThan(0);

    // Accepted carrier requests, exactly: two signed Twilio callbacks and one signed Telnyx event for unknown calls.
    const beforeAccepted = (await scrape()).samples;
    for (let i = 0; i < 2; i++) {
      expect((await postTwilio("/telephony/twilio/status", twilioCallParams(randomCallSid(), "+15550001111", "completed"))).status).toBe(
        204,
      );
    }
    expect((await postTelnyx(telnyxEnvelope("call.hangup", { call_control_id: randomCallControlId() }))).status).toBe(200);
    const afterAccepted = (await scrape()).samples;
    expect(delta(beforeAccepted, afterAccepted, 'webhook_requests_total{carrier="twilio",outcome="accepted"}')).toBe(2);
    expect(delta(beforeAccepted, afterAccepted, 'webhook_requests_total{carrier="telnyx",outcome="accepted"}')).toBe(1);
  });

  it("exposes only catalogued series, each with its own label keys, and counters that never go down", async () => {
    const first = await scrape();
    const second = await scrape();
    const types = [...first.text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(types.map(([name]) => name).sort()).toEqual(Object.keys(SERIES).sort());
    for (const [name, kind] of types) expect(kind).toBe(SERIES[name as SeriesName].kind);
    for (const key of first.samples.keys()) {
      const bare = key.replace(/\{.*$/, "");
      const name = (bare in SERIES ? bare : bare.replace(/_(bucket|sum|count)$/, "")) as SeriesName;
      const spec = SERIES[name];
      expect(spec, key).toBeDefined();
      const labelKeys = [...key.matchAll(/(\w+)="/g)].map((m) => m[1]!).filter((label) => label !== "le");
      expect(labelKeys, key).toEqual([...spec.labels]);
    }
    for (const [key, value] of first.samples)
      if (key.includes("_total")) expect(second.samples.get(key) ?? 0).toBeGreaterThanOrEqual(value);
  });
});
