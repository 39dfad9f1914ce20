import { describe, expect, it } from "vitest";
import {
  type ConversationSignal,
  EscalationEvaluator,
  type EscalationSettings,
  escalationSettingsSchema,
} from "../../../workers/shared/escalation.ts";

/** The evaluator alone: pure, fed signals, deciding once per rule. */

const said = (text: string, score = 0): ConversationSignal => ({ kind: "caller_turn", text, score });
const tool = (failed: boolean): ConversationSignal => ({ kind: "tool_outcome", failed });
const rules = (input: Record<string, unknown>): EscalationSettings => escalationSettingsSchema.parse(input);

describe("EscalationEvaluator", () => {
  it("matches keywords case-insensitively on word boundaries, phrases across any whitespace, and fires once", () => {
    const evaluator = new EscalationEvaluator();
    const keywords = rules({ keywords: ["human", "speak to a manager"] });
    expect(evaluator.observe(keywords, said("That was inhumane, humans are slow"))).toEqual([]);
    expect(evaluator.observe(keywords, said("the humanities"))).toEqual([]);
    expect(evaluator.observe(keywords, said("Let me SPEAK   to a\tManager!"))).toEqual([
      { rule: "keyword", reason: 'the caller said "speak to a manager"' },
    ]);
    expect(evaluator.observe(keywords, said("human, human, HUMAN"))).toEqual([]);
  });

  it("keywords with hyphens and apostrophes are words like any other", () => {
    const evaluator = new EscalationEvaluator();
    const keywords = rules({ keywords: ["call-back", "don't understand"] });
    expect(evaluator.observe(keywords, said("I need a callback"))).toEqual([]);
    expect(evaluator.observe(keywords, said("I DON'T understand you"))).toEqual([
      { rule: "keyword", reason: 'the caller said "don\'t understand"' },
    ]);
    expect(new EscalationEvaluator().observe(keywords, said("Please arrange a Call-Back."))).toEqual([
      { rule: "keyword", reason: 'the caller said "call-back"' },
    ]);
  });

  it("needs N caller turns in a row below the threshold; a turn at or above it starts the count again", () => {
    const evaluator = new EscalationEvaluator();
    const sentiment = rules({ sentimentBelow: -0.3, sentimentTurns: 3 });
    for (const score of [-0.5, -0.6, -0.3, -0.4, -0.9]) expect(evaluator.observe(sentiment, said("…", score))).toEqual([]);
    expect(evaluator.observe(sentiment, said("…", -0.31))).toEqual([
      { rule: "sentiment", reason: "caller sentiment below -0.3 for 3 turns in a row" },
    ]);
    expect(evaluator.observe(sentiment, said("…", -1))).toEqual([]);
  });

  it("sentimentBelow alone escalates on the first such turn", () => {
    expect(new EscalationEvaluator().observe(rules({ sentimentBelow: 0 }), said("…", -0.1))).toEqual([
      { rule: "sentiment", reason: "caller sentiment below 0 for 1 turns in a row" },
    ]);
  });

  it("counts failed tool calls over the session, successes between them included", () => {
    const evaluator = new EscalationEvaluator();
    const tools = rules({ toolFailures: 2 });
    expect(evaluator.observe(tools, tool(true))).toEqual([]);
    expect(evaluator.observe(tools, tool(false))).toEqual([]);
    expect(evaluator.observe(tools, tool(true))).toEqual([{ rule: "tool_failures", reason: "2 tool calls failed" }]);
    expect(evaluator.observe(tools, tool(true))).toEqual([]);
  });

  it("one turn may fire two rules at once", () => {
    const both = rules({ keywords: ["manager"], sentimentBelow: -0.2 });
    expect(new EscalationEvaluator().observe(both, said("Terrible. Get me a manager.", -0.6)).map((d) => d.rule)).toEqual([
      "keyword",
      "sentiment",
    ]);
  });

  it("without rules it decides nothing but keeps counting: replayed after a restart, the next turn completes the run", () => {
    const rebuilt = new EscalationEvaluator(["keyword"]);
    for (const signal of [said("human", -0.5), said("awful", -0.5), tool(true)]) expect(rebuilt.observe(null, signal)).toEqual([]);
    const all = rules({ keywords: ["human"], sentimentBelow: -0.2, sentimentTurns: 3, toolFailures: 2 });
    // The keyword fired before the restart: never again.
    expect(rebuilt.observe(all, said("a human, please", -0.5)).map((d) => d.rule)).toEqual(["sentiment"]);
    expect(rebuilt.observe(all, tool(true)).map((d) => d.rule)).toEqual(["tool_failures"]);
  });

  it("rules learned late see the turns before them", () => {
    const evaluator = new EscalationEvaluator();
    evaluator.observe(null, said("bad", -0.6));
    expect(evaluator.observe(rules({ sentimentBelow: -0.5, sentimentTurns: 2 }), said("worse", -0.7)).map((d) => d.rule)).toEqual([
      "sentiment",
    ]);
  });
});
