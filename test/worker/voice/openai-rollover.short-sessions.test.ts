import { describe, expect, it } from "vitest";
import { eventually } from "../support/carriers.ts";
import { putScenario, uniqueKey } from "../support/provider-simulator.ts";
import { connectionsOf, startCall, switchHistory, turn } from "../support/switching.ts";

/**
 * OpenAI ends a Realtime session after a fixed time; the call's object opens a fresh one before that, with the
 * conversation, and cuts over at a pause. Here (project `worker-short-sessions`) the rollover comes 3 s after each
 * connect (OPENAI_SESSION_ROLLOVER_MINUTES = 0.05) instead of 55 minutes.
 */
describe("OpenAI session rollover", () => {
  it("opens a fresh OpenAI session with the conversation before the old one's cap, and the call goes on", async () => {
    const key = uniqueKey("openai-rollover");
    await putScenario(key, { replies: ["First answer.", "Second answer."], callerTranscripts: ["First question.", "Second question."] });
    const { caller, token, sessionId } = await startCall("openai", key);
    await turn(caller);
    const rollover = await eventually(
      async () => (await switchHistory(token, sessionId)).find((entry) => entry.reason === "rollover"),
      200,
    );
    expect(rollover).toMatchObject({ fromProvider: "openai", toProvider: "openai", outcome: "succeeded" });
    // The history says the switch succeeded as the old socket is being closed: wait until the simulator saw the close.
    const sessions = await eventually(async () => {
      const connections = await connectionsOf(key, "openai");
      return connections.length >= 2 && connections[0]!.close !== null && connections;
    });
    expect(sessions.length).toBeGreaterThanOrEqual(2);
    // The fresh session was given the conversation so far, and the old one was closed by the platform.
    expect(JSON.stringify(sessions[1]!.history)).toContain("First question.");
    expect(JSON.stringify(sessions[1]!.history)).toContain("First answer.");
    expect(sessions[0]!.close?.by).toBe("client");
    await turn(caller, "invoice");
  });
});
