import { beforeEach, describe, expect, it } from "vitest";
import { eventually } from "../support/carriers.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { type CapturedLogs, captureLogs, type LogLine } from "../support/logs.ts";
import { openStream, twilioCallWith } from "../support/media-caller.ts";
import { forgetProviderHealth } from "../support/provider-health.ts";
import { putScenario, uniqueKey } from "../support/provider-simulator.ts";
import { startCall, switchTo, turn } from "../support/switching.ts";

/**
 * The log events of a call's provider connection, breaker, switches and state (the README's catalogue), captured as
 * written while real calls run through the Worker and the call's object against the provider simulators: each event
 * comes when its moment does, names its provider, and carries the session, its tenant and the correlation id; and a
 * stretch of caller audio writes nothing.
 */

/** A provider refused in one test would be "offline" in the fleet registry for the next: each starts from none. */
beforeEach(forgetProviderHealth);

const CATALOGUE = /^(provider|session|breaker|switch)\.|^call\.transition$/;

/** The catalogue's events of a session, in order, as `event` or `event:provider`. */
const eventsOf = (logs: CapturedLogs, sessionId: string) =>
  logs
    .of(sessionId)
    .filter((line) => CATALOGUE.test(line.event))
    .map((line) => (line.event.startsWith("call.") ? line.event : `${line.event}:${String(line.provider)}`));

/** Every catalogue line of the session names its provider, the session's tenant and the correlation id. */
function expectIdentified(lines: LogLine[], ids: { tenantId: string; correlationId: string }) {
  const catalogue = lines.filter((line) => CATALOGUE.test(line.event));
  expect(catalogue.length).toBeGreaterThan(0);
  for (const line of catalogue) {
    expect(line).toMatchObject({ tenantId: ids.tenantId, correlationId: ids.correlationId, provider: expect.any(String) });
  }
}

describe("provider connection events", () => {
  it("a refusal, then success: each failed dial, each retry, then the setup and the reconnection", async () => {
    const logs = captureLogs();
    const key = uniqueKey("log-refuse");
    await putScenario(key, { refuseUpgrade: 503, connectionsToRefuse: 2, replies: ["Hello, I am here now."] });
    const call = await twilioCallWith("openai", key);
    await logs.until(call.sessionId, (line) => line.event === "provider.reconnected");
    expect(eventsOf(logs, call.sessionId)).toEqual([
      "call.transition",
      "call.transition",
      "provider.connect_failed:openai",
      "provider.reconnect_attempt:openai",
      "provider.connect_failed:openai",
      "provider.reconnect_attempt:openai",
      "session.setup:openai",
      "session.configured:openai",
      "provider.reconnected:openai",
    ]);
    const lines = logs.of(call.sessionId);
    expect(lines.filter((line) => line.event === "provider.connect_failed").map((line) => [line.attempt, line.error])).toEqual([
      [0, "upgrade refused with 503"],
      [1, "upgrade refused with 503"],
    ]);
    expect(lines.find((line) => line.event === "provider.reconnected")).toMatchObject({ level: "info", attempts: 3 });
    const transitions = lines.filter((line) => line.event === "call.transition");
    expect(transitions.map((line) => [line.from, line.to, line.trigger])).toEqual([
      [null, "initiated", "call.opened"],
      ["initiated", "ringing", "twilio.ringing"],
    ]);

    // The caller's stream starts: the call is answered, one transition more.
    const caller = await openStream(call);
    await caller.silence(200);
    const answered = await logs.until(call.sessionId, (line) => line.event === "call.transition" && line.to === "in_progress");
    expect(answered).toMatchObject({ from: "ringing", trigger: "media.start", source: "carrier", callId: expect.any(String) });
    expectIdentified(logs.of(call.sessionId), { tenantId: call.tenantId, correlationId: key });
  });

  it("writes nothing during a stretch of caller audio", async () => {
    const logs = captureLogs();
    const key = uniqueKey("log-frames");
    await putScenario(key, { replies: ["Hello."] });
    const call = await twilioCallWith("openai", key);
    await logs.until(call.sessionId, (line) => line.event === "provider.connected");
    const caller = await openStream(call);
    await caller.silence(200);
    await logs.until(call.sessionId, (line) => line.event === "call.transition" && line.to === "in_progress");
    const before = logs.of(call.sessionId).length;
    await caller.silence(4_000); // 200 frames
    expect(logs.of(call.sessionId).slice(before)).toEqual([]);
  });
});

describe("breaker events", () => {
  it("opened by refusals (the call fails over), half-open for a trial after its open period, closed after a good turn", async () => {
    const logs = captureLogs();
    const key = uniqueKey("log-breaker");
    await putScenario(key, { refuseUpgrade: 503 });
    const call = await twilioCallWith("openai", key);
    const caller = await openStream(call);
    await caller.silence(100);
    const opened = await logs.until(call.sessionId, (line) => line.event === "breaker.opened" && line.provider === "openai");
    expect(opened).toMatchObject({ level: "warn", consecutiveFailures: 5, openMs: 1000 });
    const gaveUp = await logs.until(call.sessionId, (line) => line.event === "provider.reconnect_failed");
    expect(gaveUp).toMatchObject({ level: "error", provider: "openai", why: "breaker_open" });
    // Every other provider refuses too: the failover's switches roll back until the offline engine takes the call.
    await logs.until(call.sessionId, (line) => line.event === "switch.completed" && line.to === "local");
    const switches = logs.of(call.sessionId).filter((line) => line.event.startsWith("switch."));
    expect(switches.map((line) => `${line.event}:${String(line.to)}:${String(line.reason)}`)).toEqual([
      "switch.started:gemini:auto_failover",
      "switch.rolled_back:gemini:auto_failover",
      "switch.started:deepgram:auto_failover",
      "switch.rolled_back:deepgram:auto_failover",
      "switch.started:local:auto_failover",
      "switch.completed:local:auto_failover",
    ]);

    // The provider recovers; once the open period is over a switch back is its half-open trial.
    await putScenario(key, { replies: ["Hello again, from openai."] });
    await eventually(async () => {
      const response = await api(`/api/v1/sessions/${call.sessionId}/switch-provider`, {
        method: "POST",
        token: call.token,
        body: { provider: "openai", immediate: true },
      });
      if (response.status === 200) return true;
      await new Promise((resolve) => setTimeout(resolve, 100));
      return false;
    }, 50);
    await turn(caller, "invoice");
    await logs.until(call.sessionId, (line) => line.event === "breaker.closed" && line.provider === "openai");
    const openai = logs.of(call.sessionId).filter((line) => line.event.startsWith("breaker.") && line.provider === "openai");
    expect(openai.map((line) => line.event)).toEqual(["breaker.opened", "breaker.half_open", "breaker.closed"]);
    expectIdentified(logs.of(call.sessionId), { tenantId: call.tenantId, correlationId: key });
  });
});

describe("switch events", () => {
  it("a switch that completes: started, the new provider set up and connected, completed", async () => {
    const logs = captureLogs();
    const key = uniqueKey("log-switch");
    await putScenario(key, { replies: ["Your invoice is ready."], callerTranscripts: ["Where is my invoice?"] });
    const { caller, token, sessionId, tenantId } = await startCall("openai", key);
    await turn(caller);
    const before = logs.of(sessionId).length;
    expect((await switchTo(token, sessionId, { provider: "gemini", reason: "operator test" })).status).toBe(200);
    const lines = logs.of(sessionId).slice(before);
    expect(eventsOf({ ...logs, of: () => lines }, sessionId)).toEqual([
      "switch.started:gemini",
      "session.setup:gemini",
      "session.configured:gemini",
      "provider.connected:gemini",
      "switch.completed:gemini",
    ]);
    expect(lines.find((line) => line.event === "switch.started")).toMatchObject({ from: "openai", to: "gemini", reason: "manual" });
    expect(lines.find((line) => line.event === "switch.completed")).toMatchObject({
      from: "openai",
      to: "gemini",
      contextPreserved: expect.any(Number),
    });
    expectIdentified(lines, { tenantId, correlationId: key });
  });

  it("a switch whose target is down: started, the failed dial, rolled back", async () => {
    const logs = captureLogs();
    const key = uniqueKey("log-rollback");
    await putScenario(`${key}#gemini`, { refuseUpgrade: 503 });
    const { caller, token, sessionId, tenantId } = await startCall("openai", key);
    await turn(caller);
    const before = logs.of(sessionId).length;
    expect((await switchTo(token, sessionId, { provider: "gemini" })).status).toBe(502);
    const lines = logs.of(sessionId).slice(before);
    expect(eventsOf({ ...logs, of: () => lines }, sessionId)).toEqual([
      "switch.started:gemini",
      "provider.connect_failed:gemini",
      "switch.rolled_back:gemini",
    ]);
    expect(lines.at(-1)).toMatchObject({ level: "warn", from: "openai", error: expect.stringContaining("could not connect to gemini") });
    expectIdentified(lines, { tenantId, correlationId: key });
  });
});

describe("web sessions", () => {
  it("log with the session, its tenant and the correlation id of the request that created it", async () => {
    const logs = captureLogs();
    const tenantId = await createTenant();
    const { accessToken } = await userWithToken(tenantId, "agent");
    const key = uniqueKey("log-web");
    await putScenario(key, { replies: ["Welcome."] });
    const response = await api("/api/v1/sessions", {
      method: "POST",
      token: accessToken,
      body: { provider: "openai" },
      headers: { "X-Correlation-ID": key },
    });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    await logs.until(id, (line) => line.event === "provider.connected");
    expect(eventsOf(logs, id)).toEqual(["session.setup:openai", "session.configured:openai", "provider.connected:openai"]);
    expectIdentified(logs.of(id), { tenantId, correlationId: key });
  });
});
