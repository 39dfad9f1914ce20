import { evictDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { analyseLocally } from "../../../workers/shared/analysis/local-engine.ts";
import type { AnalysisLine } from "../../../workers/shared/analysis/result.ts";
import type { EscalationEvent, LiveEvent } from "../../../workers/shared/live-protocol.ts";
import { dropStream } from "../support/call-faults.ts";
import { callDetail } from "../support/calls.ts";
import { closeCodeOf, eventually, simFault, simRequests } from "../support/carriers.ts";
import { api } from "../support/identity.ts";
import { openStream, twilioOutboundCallWith } from "../support/media-caller.ts";
import { putScenario, uniqueKey } from "../support/provider-simulator.ts";
import { connectionsOf, switchTo, transcriptHas, turn } from "../support/switching.ts";

/**
 * Escalation end to end: a Twilio call through the real Worker and its object, the provider simulator saying what the
 * caller said, a supervisor watching on /live, the fake Twilio API taking (or refusing) the transfer.
 */

const HUMAN_LINE = "+15550004242";

const opened: WebSocket[] = [];
afterEach(() => {
  for (const socket of opened.splice(0)) socket.close(1000, "test done");
});

/** A supervisor's /live socket; every event kept in order from the start, so none is missed between awaits. */
async function watch(token: string, sessionId: string) {
  const response = await exports.default.fetch(`https://switchboard.test/api/v1/sessions/${sessionId}/live`, {
    headers: { Upgrade: "websocket", Authorization: `Bearer ${token}`, "CF-Connecting-IP": "198.51.100.78" },
  });
  expect(response.status).toBe(101);
  const socket = response.webSocket!;
  socket.accept();
  opened.push(socket);
  void closeCodeOf(socket);
  const events: LiveEvent[] = [];
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") events.push(JSON.parse(event.data) as LiveEvent);
  });
  const escalations = () => events.filter((event): event is EscalationEvent => event.type === "escalation");
  return {
    events,
    escalations,
    /** Waits for the nth event of a type; answers its index among all events. */
    nth: (type: LiveEvent["type"], n: number) =>
      eventually(async () => {
        const indexes = events.flatMap((event, index) => (event.type === type ? [index] : []));
        return indexes.length >= n ? indexes[n - 1]! + 1 : undefined;
      }, 400).then((position) => position - 1),
  };
}

async function escalationRows(sessionId: string) {
  const { results } = await env.DB.prepare(
    "SELECT tenant_id, rule, reason, transfer_to, transfer_ok, transfer_error FROM session_escalations WHERE session_id = ?",
  )
    .bind(sessionId)
    .all<{
      tenant_id: string;
      rule: string;
      reason: string;
      transfer_to: string | null;
      transfer_ok: number | null;
      transfer_error: string | null;
    }>();
  return results;
}

const callObjectOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));

const transferRedirects = async (callSid: string) =>
  (await simRequests({ carrier: "twilio", callId: callSid, path: `/Calls/${callSid}.json` })).filter((request) =>
    String((request.body as Record<string, string>).Twiml ?? "").includes("<Dial"),
  );

interface SessionView {
  escalations: Array<{ rule: string; reason: string; transfer: { to: string; ok: boolean; error: string | null } | null }>;
}
const sessionOf = async (token: string, sessionId: string) =>
  (await (await api(`/api/v1/sessions/${sessionId}`, { token })).json()) as SessionView;

describe("escalation rules on a live call", () => {
  it('a caller saying "I want a human" escalates once: the event, the record, and the transfer to the human line', async () => {
    const key = uniqueKey("escalate-keyword");
    await putScenario(key, { replies: ["Let me get someone."], callerTranscripts: ["Please, I want a HUMAN now."] });
    const call = await twilioOutboundCallWith("openai", key, undefined, {
      escalation: { keywords: ["human", "speak to a manager"], transferTo: HUMAN_LINE },
    });
    const live = await watch(call.token, call.sessionId);
    const caller = await openStream(call, 8);
    await caller.say("hello");
    await caller.silence(700);

    const at = await live.nth("escalation", 1);
    expect(live.events[at]).toMatchObject({
      type: "escalation",
      rule: "keyword",
      reason: 'the caller said "human"',
      transfer: { to: HUMAN_LINE, ok: true, status: "transferred", error: null },
    });
    const [redirect, ...more] = await transferRedirects(call.callSid);
    expect(more).toEqual([]);
    expect((redirect!.body as Record<string, string>).Twiml).toContain(HUMAN_LINE);
    expect((await callDetail(call.token, call.callId)).status).toBe("transferred");

    const rows = await eventually(async () => {
      const found = await escalationRows(call.sessionId);
      return found.length > 0 && found[0]!.transfer_ok !== null && found;
    });
    expect(rows).toEqual([
      {
        tenant_id: call.tenantId,
        rule: "keyword",
        reason: 'the caller said "human"',
        transfer_to: HUMAN_LINE,
        transfer_ok: 1,
        transfer_error: null,
      },
    ]);
    expect((await sessionOf(call.token, call.sessionId)).escalations).toEqual([
      { rule: "keyword", reason: 'the caller said "human"', at: expect.any(String), transfer: { to: HUMAN_LINE, ok: true, error: null } },
    ]);
    expect(live.escalations()).toHaveLength(1);
  });

  it("negative sentiment for N turns in a row escalates once, not per turn, and the count carries across a provider switch", async () => {
    const key = uniqueKey("escalate-sentiment");
    await putScenario(key, {
      replies: ["I hear you.", "I am sorry.", "Let me fix it."],
      callerTranscripts: ["This is terrible.", "Everything about it is wrong and awful.", "The worst service, I hate it."],
    });
    const call = await twilioOutboundCallWith("openai", key, undefined, {
      escalation: { sentimentBelow: -0.3, sentimentTurns: 2 },
    });
    const live = await watch(call.token, call.sessionId);
    const caller = await openStream(call, 8);

    await turn(caller);
    await live.nth("sentiment", 1);
    // One negative turn is not yet a run of two; the run goes on with the next provider.
    expect(live.escalations()).toEqual([]);
    expect((await switchTo(call.token, call.sessionId, { provider: "gemini" })).status).toBe(200);

    await turn(caller);
    const second = await live.nth("sentiment", 2);
    const escalated = await live.nth("escalation", 1);
    expect(escalated).toBeGreaterThan(second);
    expect(live.events[escalated]).toEqual({
      type: "escalation",
      rule: "sentiment",
      reason: "caller sentiment below -0.3 for 2 turns in a row",
      at: expect.any(Number),
    });

    await turn(caller);
    const third = await live.nth("sentiment", 3);
    expect((live.events[third] as Extract<LiveEvent, { type: "sentiment" }>).turn.label).toBe("negative");
    await eventually(async () => (await escalationRows(call.sessionId)).length === 1);
    expect(live.escalations()).toHaveLength(1);
    // No transfer was asked for: the call stays with the agent.
    expect(await transferRedirects(call.callSid)).toEqual([]);
    expect((await callDetail(call.token, call.callId)).status).toBe("in_progress");
  });

  it("repeated tool failures escalate", async () => {
    const key = uniqueKey("escalate-tools");
    await putScenario(key, {
      replies: ["Let me look.", "Let me look again."],
      callerTranscripts: ["What do I owe?", "Can you check again?"],
      toolCalls: [
        { onTurn: 1, name: "get_balance", arguments: {} },
        { onTurn: 2, name: "get_balance", arguments: {} },
      ],
    });
    const call = await twilioOutboundCallWith("openai", key, undefined, { escalation: { toolFailures: 2 } });
    const live = await watch(call.token, call.sessionId);
    const caller = await openStream(call, 8);

    await turn(caller);
    await eventually(async () => live.events.some((event) => event.type === "tool_call" && event.status === "failed"), 400);
    expect(live.escalations()).toEqual([]);
    await turn(caller);
    const at = await live.nth("escalation", 1);
    expect(live.events[at]).toMatchObject({ rule: "tool_failures", reason: "2 tool calls failed" });
    expect(live.events[at]).not.toHaveProperty("transfer");

    // The caller was calm, so the transcript alone recommends no person; the analysis agrees with what happened.
    expect((await api(`/api/v1/sessions/${call.sessionId}/end`, { method: "POST", token: call.token })).status).toBe(200);
    const analysis = await eventually(async () => {
      const view = (await (await api(`/api/v1/sessions/${call.sessionId}/analysis`, { token: call.token })).json()) as {
        status: string;
        escalation: unknown;
      };
      return view.status === "ready" && view;
    }, 400);
    expect(analysis.escalation).toEqual({ recommended: true, reason: "escalated during the call: 2 tool calls failed" });
    // The object analysed the transcript it holds, in one write: what D1's copy of that transcript reads as.
    const { results } = await env.DB.prepare(
      "SELECT role, text, interrupted FROM transcript_lines WHERE session_id = ? AND role != 'system' ORDER BY seq",
    )
      .bind(call.sessionId)
      .all<{ role: AnalysisLine["role"]; text: string; interrupted: number }>();
    expect(results.length).toBeGreaterThan(0);
    const { escalation: _, ...fromD1 } = analyseLocally(results.map((line) => ({ ...line, interrupted: line.interrupted === 1 })));
    expect(analysis).toMatchObject({ ...fromD1, attempts: 1 });
    // Claimed and completed in one statement: no claim was ever open (a full attempt's runs two minutes past its start).
    const row = await env.DB.prepare("SELECT created_at, next_attempt_at FROM session_analysis WHERE session_id = ?")
      .bind(call.sessionId)
      .first<{ created_at: number; next_attempt_at: number }>();
    expect(row?.next_attempt_at).toBe(row?.created_at);
  });

  it("a tenant with no rules is never escalated, whatever the caller says or the tools do", async () => {
    const key = uniqueKey("escalate-none");
    await putScenario(key, {
      replies: ["Okay, I will look into that for you."],
      callerTranscripts: ["This is terrible, I want a human manager."],
      toolCalls: [{ onTurn: 1, name: "get_balance", arguments: {} }],
    });
    const call = await twilioOutboundCallWith("openai", key);
    const live = await watch(call.token, call.sessionId);
    const caller = await openStream(call, 8);
    await turn(caller);
    await live.nth("sentiment", 1);
    await eventually(async () => live.events.some((event) => event.type === "tool_call" && event.status === "failed"), 400);
    await eventually(async () => live.events.some((event) => event.type === "transcript" && event.role === "agent"), 400);
    expect(live.escalations()).toEqual([]);
    expect(await escalationRows(call.sessionId)).toEqual([]);
    expect((await sessionOf(call.token, call.sessionId)).escalations).toEqual([]);
  });

  it("a transfer the carrier refuses is said in the event and recorded; the call goes on with the agent", async () => {
    const key = uniqueKey("escalate-refused");
    await putScenario(key, {
      replies: ["Let me get someone.", "I am still here to help."],
      callerTranscripts: ["Get me a manager.", "Hello?"],
    });
    const call = await twilioOutboundCallWith("openai", key, undefined, {
      escalation: { keywords: ["manager"], transferTo: HUMAN_LINE },
    });
    await simFault({ match: { callId: call.callSid, path: `/Calls/${call.callSid}.json` }, status: 400, times: 1 });
    const live = await watch(call.token, call.sessionId);
    const caller = await openStream(call, 8);

    await turn(caller);
    const at = await live.nth("escalation", 1);
    const event = live.events[at] as EscalationEvent;
    expect(event).toMatchObject({ rule: "keyword", transfer: { to: HUMAN_LINE, ok: false, status: "in_progress" } });
    expect(event.transfer!.error).toMatch(/refused to transfer/);
    expect((await callDetail(call.token, call.callId)).status).toBe("in_progress");

    // The conversation goes on: the agent answers the next turn.
    await turn(caller);
    expect((await callDetail(call.token, call.callId)).status).toBe("in_progress");
    const [row] = await eventually(async () => {
      const found = await escalationRows(call.sessionId);
      return found.length > 0 && found[0]!.transfer_ok !== null && found;
    });
    expect(row).toMatchObject({ rule: "keyword", transfer_to: HUMAN_LINE, transfer_ok: 0 });
    expect(live.escalations()).toHaveLength(1);
  });

  /*
   * A restart as a deploy makes it: an object holding a live outbound provider socket cannot be evicted in a test
   * (see test/worker/voice/voice-faults.test.ts), so the call moves to the offline engine first, then back.
   */
  it("survives a restart of the call's object: a fired rule stays fired, and a run of negative turns carries on", async () => {
    const key = uniqueKey("escalate-restart");
    await putScenario(key, { replies: ["I hear you, let me help."], callerTranscripts: ["This is terrible, get me a human."] });
    const call = await twilioOutboundCallWith("openai", key, undefined, {
      escalation: { keywords: ["human"], sentimentBelow: -0.3, sentimentTurns: 2 },
    });
    const before = await watch(call.token, call.sessionId);
    const first = await openStream(call, 8);
    await turn(first);
    expect((before.events[await before.nth("escalation", 1)] as EscalationEvent).rule).toBe("keyword");
    // The line is in the object's storage (D1 has it, so its write-behind commit is done) before the restart.
    await transcriptHas(call.token, call.sessionId, ["This is terrible, get me a human."]);

    expect((await switchTo(call.token, call.sessionId, { provider: "local", immediate: true })).status).toBe(200);
    await eventually(async () => (await connectionsOf(key, "openai"))[0]?.close !== null);
    await dropStream(first);
    for (const socket of opened.splice(0)) socket.close(1000, "before the restart");
    await evictDurableObject(callObjectOf(call.sessionId));

    const after = await watch(call.token, call.sessionId);
    const second = await openStream(call, 8);
    await second.silence(200);
    expect((await switchTo(call.token, call.sessionId, { provider: "openai", immediate: true })).status).toBe(200);
    // The new provider session hears the same words again: the keyword has fired already, the second negative turn
    // in a row completes the sentiment rule's run.
    await turn(second);
    const at = await after.nth("escalation", 1);
    expect(after.events[at]).toMatchObject({ rule: "sentiment", reason: "caller sentiment below -0.3 for 2 turns in a row" });
    await after.nth("sentiment", 1);
    expect(after.escalations()).toHaveLength(1);
    const rows = await eventually(async () => {
      const found = await escalationRows(call.sessionId);
      return found.length === 2 && found;
    });
    expect(rows.map((row) => row.rule).sort()).toEqual(["keyword", "sentiment"]);
  });
});
