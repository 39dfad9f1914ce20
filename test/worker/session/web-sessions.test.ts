import { afterEach, describe, expect, it } from "vitest";
import { eventually } from "../support/carriers.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { closeLiveBrowsers, joinLive, type LiveBrowser } from "../support/live-browser.ts";
import { callerSpeech, putScenario, simulatorConnections } from "../support/provider-simulator.ts";

/**
 * Web sessions end to end: the API creates the session (its provider dialled at once), a browser joins `/live` as
 * the caller with the subprotocol bearer, streams microphone audio (PCM16 16 kHz) and hears the agent (PCM16
 * 16 kHz binary frames); a supervisor's browser watches the same session's events.
 */

afterEach(closeLiveBrowsers);

/** Microphone audio: 20 ms frames of PCM16 16 kHz (640 bytes), a few frames per tick (faster than real time). */
async function speak(browser: LiveBrowser, pcm: Uint8Array): Promise<void> {
  for (let offset = 0, frames = 0; offset + 640 <= pcm.length; offset += 640) {
    browser.socket.send(pcm.slice(offset, offset + 640));
    if (++frames % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function createSession(token: string, body: Record<string, unknown>, correlationId: string) {
  const response = await api("/api/v1/sessions", { method: "POST", token, body, headers: { "X-Correlation-ID": correlationId } });
  expect(response.status).toBe(201);
  return (await response.json()) as {
    id: string;
    channel: string;
    status: string;
    provider: string;
    live: { path: string; subprotocol: string };
  };
}

describe("web sessions", () => {
  it("a browser caller talks with the agent while a supervisor watches", async () => {
    const tenantId = await createTenant();
    const { accessToken: agentToken } = await userWithToken(tenantId, "agent");
    const { accessToken: supervisorToken } = await userWithToken(tenantId, "supervisor");
    const key = `web-${crypto.randomUUID()}`;
    await putScenario(key, { replies: ["Welcome to the web line."], callerTranscripts: ["Hello from the browser."] });
    const session = await createSession(agentToken, { provider: "openai", instructions: "You are the web demo agent." }, key);
    expect(session).toMatchObject({
      channel: "web",
      status: "active",
      provider: "openai",
      live: { path: `/api/v1/sessions/${session.id}/live`, subprotocol: "switchboard.v1" },
    });
    // Dialled at creation, before any browser joined.
    await eventually(async () => (await simulatorConnections(key)).length === 1);

    const supervisor = await joinLive(session.id, supervisorToken, "supervisor");
    const caller = await joinLive(session.id, agentToken, "caller");
    await caller.until(() => caller.ofType("hello").length === 1);
    expect(caller.ofType("hello")[0]).toMatchObject({ channel: "web", role: "caller", provider: "openai" });

    await speak(caller, await callerSpeech("hello", "pcm16", 16000));
    await speak(caller, new Uint8Array(16000)); // half a second of silence ends the turn
    await caller.until(() => caller.audioBytes >= 16000); // half a second of agent speech at 16 kHz
    await supervisor.until(() => supervisor.ofType("transcript").some((line) => line.role === "agent"));
    expect(supervisor.audioBytes).toBe(0); // supervisors get events, never audio
    expect(supervisor.ofType("transcript").find((line) => line.role === "agent")).toMatchObject({
      text: "Welcome to the web line.",
      provider: "openai",
    });

    const [connection] = await simulatorConnections(key);
    // The browser's 16 kHz PCM reaches OpenAI as 24 kHz PCM (the object resamples).
    expect(JSON.stringify(connection!.setup)).toContain('"rate":24000');
    expect(connection!.audioIn.frames).toBeGreaterThan(50);

    const detail = await api(`/api/v1/sessions/${session.id}`, { token: agentToken });
    expect(((await detail.json()) as { call: unknown }).call).toBeNull();
  });

  it("ends when the agent ends the call, closing the browsers and recording it", async () => {
    const tenantId = await createTenant();
    const { accessToken } = await userWithToken(tenantId, "admin");
    const key = `web-end-${crypto.randomUUID()}`;
    await putScenario(key, {
      toolCalls: [{ onTurn: 1, name: "end_call", arguments: { reason: "caller is done" } }],
      replies: ["Goodbye!"],
    });
    const session = await createSession(accessToken, { provider: "openai" }, key);
    const caller = await joinLive(session.id, accessToken, "caller");
    await speak(caller, await callerSpeech("goodbye", "pcm16", 16000));
    await speak(caller, new Uint8Array(16000));
    await caller.until(() => caller.closeCode !== null);
    expect(caller.ofType("tool_call").map((event) => event.status)).toEqual(["started", "completed"]);
    expect(caller.ofType("session_ended")).toHaveLength(1);
    await eventually(async () => {
      const detail = (await (await api(`/api/v1/sessions/${session.id}`, { token: accessToken })).json()) as {
        status: string;
        endedAt: string | null;
      };
      return detail.status === "ended" && detail.endedAt !== null;
    });
  });

  it("ends on POST /end: browsers and the provider socket close, it is recorded, and only its tenant may", async () => {
    const tenantId = await createTenant();
    const { accessToken } = await userWithToken(tenantId, "agent");
    const key = `web-api-end-${crypto.randomUUID()}`;
    await putScenario(key, { replies: ["Hello."] });
    const session = await createSession(accessToken, { provider: "openai" }, key);
    const caller = await joinLive(session.id, accessToken, "caller");

    const stranger = (await userWithToken(await createTenant(), "admin")).accessToken;
    expect((await api(`/api/v1/sessions/${session.id}/end`, { method: "POST", token: stranger })).status).toBe(404);
    const { accessToken: viewer } = await userWithToken(tenantId, "viewer");
    expect((await api(`/api/v1/sessions/${session.id}/end`, { method: "POST", token: viewer })).status).toBe(403);
    expect(caller.closeCode).toBeNull();

    const ended = await api(`/api/v1/sessions/${session.id}/end`, { method: "POST", token: accessToken });
    expect(ended.status).toBe(200);
    expect(await ended.json()).toEqual({ id: session.id, channel: "web", status: "ended" });
    await caller.until(() => caller.closeCode !== null);
    expect(caller.ofType("session_ended")).toHaveLength(1);
    await eventually(async () => (await simulatorConnections(key)).every((connection) => connection.close !== null));
    await eventually(async () => {
      const detail = (await (await api(`/api/v1/sessions/${session.id}`, { token: accessToken })).json()) as { status: string };
      return detail.status === "ended";
    });
    // Again: already ended, same answer.
    const again = await api(`/api/v1/sessions/${session.id}/end`, { method: "POST", token: accessToken });
    expect(await again.json()).toEqual({ id: session.id, channel: "web", status: "ended" });
  });

  it("refuses what a web session cannot be", async () => {
    const tenantId = await createTenant();
    const { accessToken: viewer } = await userWithToken(tenantId, "viewer");
    const { accessToken: agent } = await userWithToken(tenantId, "agent");
    expect((await api("/api/v1/sessions", { method: "POST", token: viewer, body: {} })).status).toBe(403);
    expect((await api("/api/v1/sessions", { method: "POST", token: agent, body: { provider: "nope" } })).status).toBe(400);
    expect((await api("/api/v1/sessions", { method: "POST", token: agent, body: { unknown: 1 } })).status).toBe(400);
    const session = await createSession(agent, {}, `web-local-${crypto.randomUUID()}`);
    expect(session.provider).toBe("local");
  });
});
