import { exports } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { LiveEvent } from "../../../workers/shared/live-protocol.ts";
import { twilioStatus } from "../support/calls.ts";
import { closeCodeOf, eventually } from "../support/carriers.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { putScenario, uniqueKey } from "../support/provider-simulator.ts";
import { connectionsOf, startCall, switchTo, transcriptHas, turn } from "../support/switching.ts";

/**
 * A phone call end to end: each caller turn's sentiment reaches /live, the conversation's sentiment carries on across
 * a provider switch (and rides the new provider's context), and once the call ends its object analyses it offline.
 */

const opened: WebSocket[] = [];
afterEach(() => {
  for (const socket of opened.splice(0)) socket.close(1000, "test done");
});

type SentimentEvent = Extract<LiveEvent, { type: "sentiment" }>;

/** A supervisor's /live socket; its sentiment events queued from the start, so none is missed between awaits. */
async function watchSentiment(token: string, sessionId: string) {
  const response = await exports.default.fetch(`https://switchboard.test/api/v1/sessions/${sessionId}/live`, {
    headers: { Upgrade: "websocket", Authorization: `Bearer ${token}`, "CF-Connecting-IP": "198.51.100.77" },
  });
  expect(response.status).toBe(101);
  const socket = response.webSocket!;
  socket.accept();
  opened.push(socket);
  void closeCodeOf(socket);
  const events: SentimentEvent[] = [];
  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") return;
    const parsed = JSON.parse(event.data) as LiveEvent;
    if (parsed.type === "sentiment") events.push(parsed);
  });
  return { nth: (n: number) => eventually(async () => events[n - 1], 300) };
}

interface AnalysisView {
  status: string;
  summary: string | null;
  sentiment: { score: number; label: string } | null;
  insights: string[];
  actionItems: string[];
  topics: string[];
  escalation: { recommended: boolean; reason: string | null } | null;
  model: string | null;
  tokens: { input: number; output: number };
}

const analysisOf = async (token: string, sessionId: string) =>
  (await (await api(`/api/v1/sessions/${sessionId}/analysis`, { token })).json()) as AnalysisView;

describe("live sentiment and the call's analysis", () => {
  it("sends each caller turn's sentiment to /live, carries the conversation's across a switch, and analyses the ended call", async () => {
    const key = uniqueKey("sentiment");
    await putScenario(key, { replies: ["Glad to hear it."], callerTranscripts: ["I am really happy with you, thank you."] });
    await putScenario(`${key}#gemini`, {
      replies: ["I am sorry. I will send a corrected invoice today."],
      callerTranscripts: ["This is terrible, the invoice is wrong. Please send it again."],
    });
    const { caller, token, sessionId, callSid, number } = await startCall("openai", key);
    const live = await watchSentiment(token, sessionId);

    await turn(caller);
    expect(await live.nth(1)).toMatchObject({
      turn: { score: 0.5, label: "positive" },
      conversation: { score: 0.5, label: "positive" },
      turns: 1,
      provider: "openai",
    });
    expect((await analysisOf(token, sessionId)).status).toBe("pending");

    expect((await switchTo(token, sessionId, { provider: "gemini" })).status).toBe(200);
    const [gemini] = await connectionsOf(key, "gemini");
    expect(JSON.stringify(gemini!.setup)).toContain("The caller's mood so far, over 1 turns: positive (sentiment 0.5");

    await turn(caller, "invoice");
    // The new provider's turn adds to the conversation's sentiment: reset, it would be the turn's own −0.5.
    expect(await live.nth(2)).toMatchObject({
      turn: { score: -0.5, label: "negative" },
      conversation: { score: 0, label: "neutral" },
      turns: 2,
      provider: "gemini",
    });

    await transcriptHas(token, sessionId, ["I am sorry. I will send a corrected invoice today."]);
    expect((await twilioStatus(callSid, number, "completed")).status).toBe(204);
    // Its object analyses it a couple of seconds after the end, from its alarm.
    const analysis = await eventually(async () => {
      const view = await analysisOf(token, sessionId);
      return view.status === "ready" && view;
    }, 300);
    expect(analysis).toMatchObject({
      model: "local-lexicon-v1",
      sentiment: { score: 0, label: "neutral" },
      escalation: { recommended: false, reason: null },
      tokens: { input: 0, output: 0 },
    });
    expect(analysis.actionItems).toContain("caller: Please send it again.");
    expect(analysis.actionItems).toContain("agent: I will send a corrected invoice today.");
    expect(analysis.topics[0]).toBe("invoice");
    expect(analysis.insights[0]).toBe("2 caller turns, 2 agent turns");
    expect(analysis.summary).toContain("This is terrible, the invoice is wrong.");
  });

  it("a web session ended on request is analysed by its object too", async () => {
    const token = (await userWithToken(await createTenant("Web analysis"), "admin")).accessToken;
    const created = await api("/api/v1/sessions", { method: "POST", token, body: { provider: "local" } });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect((await analysisOf(token, id)).status).toBe("pending");
    expect((await api(`/api/v1/sessions/${id}/end`, { method: "POST", token })).status).toBe(200);
    // Nobody spoke: a ready, neutral analysis with nothing to summarise.
    const analysis = await eventually(async () => {
      const view = await analysisOf(token, id);
      return view.status === "ready" && view;
    }, 300);
    expect(analysis).toMatchObject({ model: "local-lexicon-v1", summary: "", sentiment: { score: 0, label: "neutral" }, topics: [] });
  });
});
