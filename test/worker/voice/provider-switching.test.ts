import { describe, expect, it } from "vitest";
import { twilioStatus } from "../support/calls.ts";
import { eventually, simRequests } from "../support/carriers.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { twilioOutboundCallWith } from "../support/media-caller.ts";
import { putScenario, uniqueKey } from "../support/provider-simulator.ts";
import {
  connectionsOf,
  type SwitchAnswer,
  startCall,
  streamOf,
  switchHistory,
  switchTo,
  transcriptHas,
  turn,
} from "../support/switching.ts";

/**
 * Switching a live call's provider, end to end: the Sessions API asks the call's object, which connects the new
 * provider with the conversation so far while the old one keeps serving, cuts over, and keeps the caller's audio
 * flowing. Automatic failover, rollback and rollover are driven by the provider simulators' faults.
 */

describe("manual provider switches", () => {
  it("moves a live call openai → gemini → deepgram with its context, the caller still hearing the agent", async () => {
    const key = uniqueKey("switch-chain");
    await putScenario(key, {
      replies: ["Your invoice is ready.", "It was paid on Monday.", "Anything else?"],
      callerTranscripts: ["Where is my invoice?", "Was it paid?", "No, thanks."],
    });
    const { caller, token, sessionId } = await startCall("openai", key);
    await turn(caller);
    await transcriptHas(token, sessionId, ["Where is my invoice?", "Your invoice is ready."]);

    const first = await switchTo(token, sessionId, { provider: "gemini", reason: "operator test" });
    const toGemini = (await first.json()) as SwitchAnswer;
    expect(first.status).toBe(200);
    expect(toGemini).toMatchObject({ success: true, sessionId, fromProvider: "openai", toProvider: "gemini", error: null });
    expect(toGemini.contextPreserved).toBeGreaterThanOrEqual(2);
    const [gemini] = await connectionsOf(key, "gemini");
    const geminiContext = JSON.stringify([gemini!.setup, gemini!.history]);
    expect(geminiContext).toContain("Where is my invoice?");
    expect(geminiContext).toContain("Your invoice is ready.");

    await turn(caller, "payment");
    expect((await connectionsOf(key, "gemini"))[0]!.audioIn.frames).toBeGreaterThan(50);

    const second = await switchTo(token, sessionId, { provider: "deepgram" });
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({ success: true, fromProvider: "gemini", toProvider: "deepgram" });
    const [deepgram] = await connectionsOf(key, "deepgram");
    expect(JSON.stringify(deepgram!.setup)).toContain("Your invoice is ready.");
    await turn(caller, "goodbye");

    await eventually(async () => {
      const history = { items: await switchHistory(token, sessionId) };
      return history.items.length === 2 && history.items;
    }).then((items) => {
      expect(items.map((item) => `${item.fromProvider}→${item.toProvider}:${item.reason}:${item.outcome}`)).toEqual([
        "openai→gemini:manual:succeeded",
        "gemini→deepgram:manual:succeeded",
      ]);
    });
    const status = (await (await api(`/api/v1/sessions/${sessionId}/switch-status`, { token })).json()) as {
      provider: string;
      inProgress: unknown;
      last: { toProvider: string };
    };
    expect(status).toMatchObject({ provider: "deepgram", inProgress: null, last: { toProvider: "deepgram" } });
    await eventually(
      async () => ((await (await api(`/api/v1/sessions/${sessionId}`, { token })).json()) as { provider: string }).provider === "deepgram",
    );
    // The first provider's session was closed by the platform once the second took over.
    expect((await connectionsOf(key, "openai"))[0]!.close?.by).toBe("client");
  });

  it("asked for mid-answer, waits for the answer to end and carries it: the new provider does not answer again", async () => {
    const key = uniqueKey("switch-mid-answer");
    const answer = "Your invoice of twelve hundred rupees was sent on Monday, and a copy went to your email as well.";
    await putScenario(key, { replies: [answer], callerTranscripts: ["Where is my invoice?"] });
    await putScenario(`${key}#gemini`, { replies: ["This must not be said."] });
    const { caller, token, sessionId } = await startCall("openai", key);
    const before = caller.agentAudioBytes();
    await caller.say("hello");
    await caller.silence(700);
    // The first of the answer's audio has reached the caller; its line comes with its last chunk.
    await caller.until(() => caller.agentAudioBytes() > before);
    const switched = await switchTo(token, sessionId, { provider: "gemini" });
    expect(switched.status).toBe(200);
    expect(((await switched.json()) as SwitchAnswer).contextPreserved).toBe(2);
    const [gemini] = await connectionsOf(key, "gemini");
    expect(JSON.stringify([gemini!.setup, gemini!.history])).toContain(answer);
    await transcriptHas(token, sessionId, ["Where is my invoice?", answer]);
    // Handed a conversation whose last word was the agent's, the new provider owes nobody an answer.
    expect((await connectionsOf(key, "gemini"))[0]!.responses.entries).toEqual([]);
  });

  it("rolls back when the target provider is down: the call stays on its provider, working", async () => {
    const key = uniqueKey("switch-rollback");
    await putScenario(`${key}#gemini`, { refuseUpgrade: 503 });
    const { caller, token, sessionId } = await startCall("openai", key);
    await turn(caller);
    const response = await switchTo(token, sessionId, { provider: "gemini" });
    expect(response.status).toBe(502);
    const answer = (await response.json()) as SwitchAnswer;
    expect(answer).toMatchObject({ success: false, fromProvider: "openai", toProvider: "gemini", switchedAt: null });
    expect(answer.error).toContain("could not connect to gemini");
    const framesBefore = (await connectionsOf(key, "openai"))[0]!.audioIn.frames;
    await turn(caller, "invoice");
    expect((await connectionsOf(key, "openai"))[0]!.audioIn.frames).toBeGreaterThan(framesBefore);
    await eventually(async () => {
      const history = { items: await switchHistory(token, sessionId) };
      return history.items.length === 1 && history.items[0]!.outcome === "failed";
    });
  });

  it("serialises concurrent switches: the second gets 409; refuses unknown providers and the current one", async () => {
    const key = uniqueKey("switch-concurrent");
    const { caller, token, sessionId } = await startCall("openai", key);
    await turn(caller);
    // Both targets take a second to finish their setup, so the two requests overlap however loaded the machine is.
    await putScenario(`${key}#gemini`, { setupDelayMs: 1_000 });
    await putScenario(`${key}#deepgram`, { setupDelayMs: 1_000 });
    const [a, b] = await Promise.all([
      switchTo(token, sessionId, { provider: "gemini" }),
      switchTo(token, sessionId, { provider: "deepgram" }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const conflict = (await (a.status === 409 ? a : b).json()) as SwitchAnswer;
    expect(conflict).toMatchObject({ success: false, error: "switch_in_progress" });
    expect((await switchTo(token, sessionId, { provider: "nope" })).status).toBe(400);
    const winner = ((await (a.status === 200 ? a : b).json()) as SwitchAnswer).toProvider;
    const same = await switchTo(token, sessionId, { provider: winner });
    expect(same.status).toBe(409);
  });

  it("a failover the call's end overtakes stops there: no further provider is tried for the ended call", async () => {
    const key = uniqueKey("failover-ended");
    const call = await startCall("openai", key);
    await turn(call.caller);
    // Gemini, first in line, takes seconds to set up: the call ends while the failover waits for it.
    await putScenario(`${key}#gemini`, { setupDelayMs: 3_000 });
    const failover = api(`/api/v1/sessions/${call.sessionId}/auto-failover`, { method: "POST", token: call.token });
    await eventually(async () => (await connectionsOf(key, "gemini")).length === 1, 300);
    call.caller.stop();
    expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 2 })).status).toBe(204);

    expect((await failover).status).toBe(409);
    const attempts = await eventually(async () => {
      const items = await switchHistory(call.token, call.sessionId);
      return items.length > 0 && items;
    }, 300);
    // Deepgram and local were next in line; asked of an ended call, each would be one more failed switch logged.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await switchHistory(call.token, call.sessionId)).toEqual(attempts);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({
      fromProvider: "openai",
      toProvider: "gemini",
      reason: "auto_failover",
      outcome: "failed",
      error: "the session has ended",
    });
    expect(await connectionsOf(key, "deepgram")).toEqual([]);
  });

  it("is tenant-scoped and role-checked", async () => {
    const key = uniqueKey("switch-auth");
    const { token, sessionId, tenantId } = await startCall("openai", key);
    const viewer = (await userWithToken(tenantId, "viewer")).accessToken;
    const outsider = (await userWithToken(await createTenant(), "admin")).accessToken;
    expect((await switchTo(viewer, sessionId, { provider: "gemini" })).status).toBe(403);
    expect((await api(`/api/v1/sessions/${sessionId}/switch-status`, { token: viewer })).status).toBe(200);
    for (const path of ["switch-status", "switch-history"])
      expect((await api(`/api/v1/sessions/${sessionId}/${path}`, { token: outsider })).status).toBe(404);
    expect((await switchTo(outsider, sessionId, { provider: "gemini" })).status).toBe(404);
    expect((await api(`/api/v1/sessions/${sessionId}/auto-failover`, { method: "POST", token: outsider })).status).toBe(404);
    expect(token).toBeTruthy();
  });
});

describe("rollover, and what a switch carries", () => {
  it("rolls over to a fresh Gemini session on goAway, resuming with the handle", async () => {
    const key = uniqueKey("rollover");
    await putScenario(key, { goAwayAfterMs: 2_500 });
    const { caller, token, sessionId } = await startCall("gemini", key);
    await turn(caller);
    const item = await eventually(async () => {
      const history = { items: await switchHistory(token, sessionId) };
      return history.items.find((entry) => entry.reason === "rollover");
    }, 300);
    expect(item).toMatchObject({ fromProvider: "gemini", toProvider: "gemini", outcome: "succeeded" });
    const sessions = await connectionsOf(key, "gemini");
    expect(sessions.length).toBeGreaterThanOrEqual(2);
    expect(sessions[1]!.resumption?.requestedHandle).toBeTruthy();
    await putScenario(key, {});
    await turn(caller, "invoice");
  });

  it("carries a finished tool call into the new provider's context without running it again", async () => {
    const key = uniqueKey("switch-tool");
    await putScenario(key, {
      toolCalls: [{ onTurn: 1, name: "transfer_to_human", arguments: { reason: "wants a person" } }],
      replies: ["Connecting you now."],
    });
    const call = await twilioOutboundCallWith("openai", key);
    const caller = await streamOf(call);
    await turn(caller);
    const transfers = async () =>
      (await simRequests({ carrier: "twilio", callId: call.callSid })).filter((request) => JSON.stringify(request.body).includes("Dial"));
    await eventually(async () => (await transfers()).length === 1);
    const response = await switchTo(call.token, call.sessionId, { provider: "gemini", immediate: true });
    expect(response.status).toBe(200);
    const [gemini] = await connectionsOf(key, "gemini");
    expect(JSON.stringify([gemini!.setup, gemini!.history])).toContain("transfer_to_human");
    await turn(caller, "invoice");
    expect(await transfers()).toHaveLength(1);
  });

  it("carries the session's metadata", async () => {
    const tenantId = await createTenant();
    const { accessToken: token } = await userWithToken(tenantId, "agent");
    const key = uniqueKey("switch-context");
    const created = await api("/api/v1/sessions", {
      method: "POST",
      token,
      headers: { "X-Correlation-ID": key },
      body: { provider: "openai", metadata: { customer: "Asha Rao", plan: "gold" } },
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    // The upgrade is recorded before the session's setup message arrives: wait for the setup itself.
    await eventually(async () => (await connectionsOf(key, "openai"))[0]?.setup != null);
    expect(JSON.stringify((await connectionsOf(key, "openai"))[0]!.setup)).toContain("customer: Asha Rao");
    const response = await switchTo(token, id, { provider: "deepgram", immediate: true });
    expect(response.status).toBe(200);
    const [deepgram] = await connectionsOf(key, "deepgram");
    expect(JSON.stringify(deepgram!.setup)).toContain("customer: Asha Rao");
    expect(JSON.stringify(deepgram!.setup)).toContain("plan: gold");
  });
});
