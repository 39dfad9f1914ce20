import { z } from "zod";

/**
 * Escalation rules: a tenant's conditions under which a live conversation should go to a person (tenant setting
 * `escalation`), and the evaluator the call's object feeds with the conversation's events. The evaluator is pure (no
 * storage, clock or I/O): its owner persists what fired and rebuilds the counters from the stored conversation.
 */

export const ESCALATION_RULES = ["keyword", "sentiment", "tool_failures"] as const;
export type EscalationRule = (typeof ESCALATION_RULES)[number];

const MAX_KEYWORDS = 50;
const MAX_KEYWORD_CHARS = 40;
const MAX_SENTIMENT_TURNS = 100;

const keyword = z
  .string()
  .trim()
  .min(1)
  .max(MAX_KEYWORD_CHARS)
  // Words and phrases only: a keyword is matched on word boundaries, never as a pattern.
  .regex(/^[\p{L}\p{N}]+(?:[ '-][\p{L}\p{N}]+)*$/u, "a word or phrase (letters, digits, spaces, apostrophes, hyphens)");

export const escalationSettingsSchema = z
  .strictObject({
    /** A caller turn whose lexicon sentiment is below this counts as negative. */
    sentimentBelow: z.number().min(-1).max(1).optional(),
    /** How many negative caller turns in a row escalate (default 1 with `sentimentBelow`). */
    sentimentTurns: z.number().int().min(1).max(MAX_SENTIMENT_TURNS).optional(),
    /** Words or phrases the caller says ("human", "speak to a manager"), case-insensitive, on word boundaries. */
    keywords: z.array(keyword).min(1).max(MAX_KEYWORDS).optional(),
    /** How many failed tool calls in the session escalate. */
    toolFailures: z.number().int().min(1).max(100).optional(),
    /** A phone call in progress is transferred here when a rule fires; null or absent: the event only. */
    transferTo: z
      .string()
      .regex(/^\+[1-9]\d{6,14}$/, "an E.164 number such as +919876543210")
      .nullable()
      .optional(),
  })
  .refine((rules) => rules.sentimentTurns === undefined || rules.sentimentBelow !== undefined, {
    message: "sentimentTurns needs sentimentBelow",
    path: ["sentimentTurns"],
  })
  .refine((rules) => rules.sentimentBelow !== undefined || rules.keywords !== undefined || rules.toolFailures !== undefined, {
    message: "give at least one rule: sentimentBelow, keywords or toolFailures",
  });
export type EscalationSettings = z.infer<typeof escalationSettingsSchema>;

/** What the evaluator is fed, once each, off the audio path. */
export type ConversationSignal =
  /** A caller's final transcript line (as stored) and its lexicon sentiment score. */
  | { kind: "caller_turn"; text: string; score: number }
  /** A tool call finished (a call id delivered again is not a new outcome). */
  | { kind: "tool_outcome"; failed: boolean };

export interface EscalationDecision {
  rule: EscalationRule;
  /** Why, for supervisors: the rule and its figures (a keyword as the tenant configured it, never the caller's line). */
  reason: string;
}

/**
 * Keeps the caller turns' sentiment scores and counts failed tool calls, matches keywords, and decides. Each rule
 * fires at most once per session: the rules already fired (from the owner's storage) are given at construction. What
 * it keeps does not depend on the rules, so rules learned late still see the turns before them, and `rules` null
 * decides nothing: how the owner replays the stored conversation after a restart.
 */
export class EscalationEvaluator {
  /** The latest caller turns' scores, newest last (as many as the longest run a rule may ask for). */
  private readonly scores: number[] = [];
  private failedTools = 0;
  private readonly fired: Set<EscalationRule>;
  private matcher: { keywords: readonly string[]; pattern: RegExp } | null = null;

  constructor(fired: Iterable<EscalationRule> = []) {
    this.fired = new Set(fired);
  }

  observe(rules: EscalationSettings | null, signal: ConversationSignal): EscalationDecision[] {
    const decisions: EscalationDecision[] = [];
    if (signal.kind === "tool_outcome") {
      if (signal.failed) this.failedTools++;
      if (rules?.toolFailures !== undefined && this.failedTools >= rules.toolFailures) {
        this.decide(decisions, "tool_failures", `${this.failedTools} tool calls failed`);
      }
      return decisions;
    }
    this.scores.push(signal.score);
    if (this.scores.length > MAX_SENTIMENT_TURNS) this.scores.shift();
    if (!rules) return decisions;
    if (rules.keywords && !this.fired.has("keyword")) {
      const said = this.keywordIn(rules.keywords, signal.text);
      if (said) this.decide(decisions, "keyword", `the caller said "${said}"`);
    }
    const below = rules.sentimentBelow;
    if (below !== undefined) {
      const turns = rules.sentimentTurns ?? 1;
      const run = this.negativeRun(below);
      if (run >= turns) this.decide(decisions, "sentiment", `caller sentiment below ${below} for ${run} turns in a row`);
    }
    return decisions;
  }

  /** Caller turns in a row, newest back, scoring below the threshold. */
  private negativeRun(below: number): number {
    let run = 0;
    for (let i = this.scores.length - 1; i >= 0 && this.scores[i]! < below; i--) run++;
    return run;
  }

  private decide(decisions: EscalationDecision[], rule: EscalationRule, reason: string): void {
    if (this.fired.has(rule)) return;
    this.fired.add(rule);
    decisions.push({ rule, reason });
  }

  /** The first keyword the text holds (lower case), matched case-insensitively on word boundaries. */
  private keywordIn(keywords: readonly string[], text: string): string | null {
    if (this.matcher?.keywords !== keywords) this.matcher = { keywords, pattern: keywordPattern(keywords) };
    const found = this.matcher.pattern.exec(text);
    return found ? found[0].toLowerCase().replace(/\s+/g, " ") : null;
  }
}

/** One pattern for all keywords; a phrase's spaces match any run of whitespace. */
function keywordPattern(keywords: readonly string[]): RegExp {
  const alternatives = keywords.map((word) =>
    word
      .trim()
      .split(/\s+/)
      // Keywords hold no pattern syntax (the schema allows letters, digits, apostrophes, hyphens); escaped regardless.
      // A hyphen is not escaped: outside a class, \- is an invalid escape in a unicode pattern.
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      .join("\\s+"),
  );
  return new RegExp(`(?<![\\p{L}\\p{N}])(${alternatives.join("|")})(?![\\p{L}\\p{N}])`, "iu");
}
