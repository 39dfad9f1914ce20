import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { eventually, simRequests } from "../support/carriers.ts";
import { api } from "../support/identity.ts";
import { openStream, transcriptOf, twilioCallWith, twilioOutboundCallWith } from "../support/media-caller.ts";
import { putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";

/**
 * The conversation features of a call, end to end through the real Worker and the call's object against the
 * provider simulators: barge-in (what the caller heard, from echoed marks), DTMF, and the built-in tools. What the
 * provider received is read from the simulator's recording, what the carrier was asked from the fake Twilio API,
 * what was kept from the public API.
 */

async function callStatus(token: string, callId: string): Promise<string> {
  const response = await api(`/api/v1/calls/${callId}`, { token });
  expect(response.status).toBe(200);
  return ((await response.json()) as { status: string }).status;
}

const stubOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));

/** Long enough (≈ 9 s of speech) that the caller is still hearing it when they talk over it. */
const LONG_REPLY =
  "Thanks for calling about your invoice. I can see three open items on your account, the oldest from last March. " +
  "Let me walk you through each one in turn.";

/** A call whose caller talks over a long agent reply; returns once the carrier was told to clear its playback. */
async function talkOver(provider: "openai" | "gemini" | "deepgram") {
  const key = uniqueKey(`barge-${provider}`);
  await putScenario(key, {
    replies: [LONG_REPLY, "Of course, go ahead."],
    callerTranscripts: ["Hi, I have a question about my invoice.", "Wait, sorry."],
  });
  const call = await twilioCallWith(provider, key);
  await eventually(async () => (await simulatorConnections(key)).length === 1);
  // Real-time playback: marks come back only as the audio before them has "played".
  const caller = await openStream(call, 1);
  await caller.say("hello");
  await caller.silence(600);
  await caller.until(() => caller.echoedMarks.length >= 10);
  await caller.say("interrupt");
  await caller.until(() => caller.count("clear") > 0);
  const [itemId] = caller.markedItems();
  expect(itemId).toBeDefined();
  return { key, call, caller, itemId: itemId! };
}

describe.each(["openai", "gemini", "deepgram"] as const)("barge-in with %s", (provider) => {
  it("clears the carrier's playback and tells the provider what the caller heard (from echoed marks)", async () => {
    const { key, caller, itemId } = await talkOver(provider);
    const heardBeforeClear = caller.heardBeforeClear(itemId);
    expect(heardBeforeClear).toBeGreaterThan(0);
    if (provider === "openai") {
      const connection = await eventually(async () => {
        const [c] = await simulatorConnections(key);
        return c && c.truncations.entries.length > 0 && c;
      });
      const truncations = connection.truncations.entries.filter((t) => t.itemId === itemId);
      expect(truncations).toHaveLength(1);
      expect(truncations[0]!.accepted).toBe(true);
      expect(truncations[0]!.audioEndMs).toBeGreaterThan(0);
      expect(truncations[0]!.audioEndMs).toBeLessThanOrEqual(heardBeforeClear);
      expect(connection.serverMessages.entries.filter((m) => m.type === "error")).toEqual([]);
    } else {
      // Gemini and Deepgram cut themselves off: nothing to truncate, but the provider saw the barge-in.
      const [connection] = await simulatorConnections(key);
      expect(connection!.bargeIns.entries.length).toBeGreaterThan(0);
      expect(connection!.truncations.entries).toEqual([]);
    }
    // The conversation goes on: the agent answers the interruption.
    const before = caller.agentAudioBytes();
    await caller.silence(600);
    await caller.until(() => caller.agentAudioBytes() > before);
  });

  it("keeps the agent's cut-off line in the transcript, marked interrupted", async () => {
    const { call } = await talkOver(provider);
    const lines = await transcriptOf(call.token, call.sessionId, (ls) => ls.some((l) => l.role === "agent" && l.interrupted), 80);
    const agentLines = lines.filter((l) => l.role === "agent");
    expect(agentLines[0]).toMatchObject({ interrupted: true, provider });
    expect(LONG_REPLY.startsWith(agentLines[0]!.text.slice(0, 20))).toBe(true);
  });
});

describe.each(["openai", "deepgram"] as const)("DTMF with %s", (provider) => {
  it("reaches the provider as text and the transcript as a caller line", async () => {
    const key = uniqueKey(`dtmf-${provider}`);
    await putScenario(key, { replies: ["You pressed five."] });
    const call = await twilioCallWith(provider, key);
    await eventually(async () => (await simulatorConnections(key)).length === 1);
    const caller = await openStream(call);
    await caller.silence(200);
    caller.dtmf("5");

    const connection = await eventually(async () => {
      const [c] = await simulatorConnections(key);
      return c && JSON.stringify(c.history.entries).includes("[DTMF] 5") && c;
    });
    expect(connection.refusedWithStatus).toBeNull();
    const lines = await transcriptOf(call.token, call.sessionId, (ls) => ls.some((l) => l.role === "caller" && l.text === "[DTMF] 5"));
    expect(lines.find((l) => l.text === "[DTMF] 5")).toMatchObject({ role: "caller", provider });
    // The agent answers the digit.
    await caller.until(() => caller.agentAudioBytes() > 0);
  });
});

describe("tool calls", () => {
  it("end_call: the provider gets the result, the agent says goodbye, the carrier hangs up, the call completes", async () => {
    const key = uniqueKey("tool-end");
    await putScenario(key, {
      replies: ["Goodbye, and thanks for calling."],
      toolCalls: [{ onTurn: 1, name: "end_call", arguments: { reason: "done" } }],
    });
    const call = await twilioOutboundCallWith("openai", key);
    const caller = await openStream(call);
    await caller.say("goodbye");
    await caller.silence(600);

    const connection = await eventually(async () => {
      const [c] = await simulatorConnections(key);
      return c && c.functionCallOutputs.entries.length > 0 && c;
    }, 250);
    const [toolCall] = connection.toolCalls.entries;
    expect(toolCall).toMatchObject({ name: "end_call" });
    expect(connection.functionCallOutputs.entries[0]!.id).toBe(toolCall!.id);
    expect(JSON.parse(String(connection.functionCallOutputs.entries[0]!.output))).toMatchObject({ ok: true });

    const hangups = await eventually(async () => {
      const requests = await simRequests({ carrier: "twilio", callId: call.callSid, path: `/Calls/${call.callSid}.json` });
      const found = requests.filter((r) => (r.body as Record<string, string>).Status === "completed");
      return found.length > 0 && found;
    }, 500);
    expect(hangups).toHaveLength(1);
    // The goodbye played before the line closed.
    expect(caller.agentAudioBytes()).toBeGreaterThan(0);
    await eventually(async () => (await callStatus(call.token, call.callId)) === "completed", 100);
    await caller.until(() => caller.closeCode !== null);
    expect(caller.closeCode).toBe(1000);

    // The same tool call id delivered again (a provider retry, a replay) runs nothing a second time.
    const rows = await runInDurableObject(stubOf(call.sessionId), (_instance, state) =>
      state.storage.sql.exec<{ call_id: string; status: string }>("SELECT call_id, status FROM tool_calls").toArray(),
    );
    expect(rows).toEqual([{ call_id: toolCall!.id, status: "completed" }]);
  });

  it("end_call with the local engine: the pound key ends the call", async () => {
    const key = uniqueKey("tool-end-local");
    const call = await twilioOutboundCallWith("local", key, "Answer briefly.");
    const caller = await openStream(call);
    await caller.say("hello");
    await caller.silence(1000);
    await caller.until(() => caller.agentAudioBytes() > 0);
    caller.dtmf("#");
    // The engine runs on audio time: the line keeps carrying silence, as a phone line does.
    for (let i = 0; i < 60 && caller.closeCode === null; i++) await caller.silence(200);
    await caller.until(() => caller.closeCode !== null);
    const hangups = await simRequests({ carrier: "twilio", callId: call.callSid, path: `/Calls/${call.callSid}.json` });
    expect(hangups.filter((r) => (r.body as Record<string, string>).Status === "completed")).toHaveLength(1);
    await eventually(async () => (await callStatus(call.token, call.callId)) === "completed", 100);
    const rows = await runInDurableObject(stubOf(call.sessionId), (_instance, state) =>
      state.storage.sql.exec<{ name: string; status: string }>("SELECT name, status FROM tool_calls").toArray(),
    );
    expect(rows).toEqual([{ name: "end_call", status: "completed" }]);
  });

  it("transfer_to_human: the carrier redirects the call to a <Dial> of the human line; a repeated call id runs once", async () => {
    const key = uniqueKey("tool-transfer");
    await putScenario(key, {
      replies: ["Connecting you now."],
      toolCalls: [{ onTurn: 1, name: "transfer_to_human", arguments: { reason: "asked for a person" } }],
    });
    const call = await twilioOutboundCallWith("openai", key);
    const caller = await openStream(call);
    await caller.say("hello");
    await caller.silence(600);

    const redirects = async () =>
      (await simRequests({ carrier: "twilio", callId: call.callSid, path: `/Calls/${call.callSid}.json` })).filter((r) =>
        String((r.body as Record<string, string>).Twiml ?? "").includes("<Dial"),
      );
    const [redirect] = await eventually(async () => {
      const found = await redirects();
      return found.length > 0 && found;
    }, 250);
    expect((redirect!.body as Record<string, string>).Twiml).toContain("+15550009999");
    await eventually(async () => (await callStatus(call.token, call.callId)) === "transferred", 100);

    const connection = await eventually(async () => {
      const [c] = await simulatorConnections(key);
      return c && c.functionCallOutputs.entries.length > 0 && c;
    });
    const toolCall = connection.toolCalls.entries[0]!;
    const firstOutput = String(connection.functionCallOutputs.entries[0]!.output);
    expect(JSON.parse(firstOutput)).toMatchObject({ ok: true, status: "transferred" });

    // The provider delivers the same call id again (as a provider retry or a replayed session would): it is
    // answered with the stored result and the carrier is not asked again.
    await runInDurableObject(stubOf(call.sessionId), (instance) => {
      const voice = (instance as unknown as { voice: { handleProviderEvent(event: unknown): void } | null }).voice;
      expect(voice).not.toBeNull();
      voice!.handleProviderEvent({
        type: "tool_call",
        callId: toolCall.id,
        name: "transfer_to_human",
        arguments: JSON.stringify({ reason: "again" }),
      });
    });
    const again = await eventually(async () => {
      const [c] = await simulatorConnections(key);
      return c && c.functionCallOutputs.entries.length > 1 && c;
    });
    expect(String(again.functionCallOutputs.entries[1]!.output)).toBe(firstOutput);
    expect(await redirects()).toHaveLength(1);
    const rows = await runInDurableObject(stubOf(call.sessionId), (_instance, state) =>
      state.storage.sql.exec<{ call_id: string; arguments: string }>("SELECT call_id, arguments FROM tool_calls").toArray(),
    );
    expect(rows).toEqual([{ call_id: toolCall.id, arguments: JSON.stringify({ reason: "asked for a person" }) }]);
  });
});
