import { z } from "zod";

/** A post-call analysis, whichever engine made it: what `GET /api/v1/sessions/{id}/analysis` answers when ready. */
export const analysisResultSchema = z.object({
  summary: z.string().max(2_000),
  sentiment: z.object({ score: z.number().min(-1).max(1), label: z.enum(["positive", "neutral", "negative"]) }),
  insights: z.array(z.string().max(300)).max(10),
  actionItems: z.array(z.string().max(300)).max(10),
  topics: z.array(z.string().max(60)).max(10),
  // Whether the conversation should have gone to a person, and why (the escalation part acts on it live).
  escalation: z.object({ recommended: z.boolean(), reason: z.string().max(300).nullable() }),
});
export type AnalysisResult = z.infer<typeof analysisResultSchema>;

/** The same shape as a JSON schema, for the text models' structured output (strict: every property required). */
export const ANALYSIS_JSON_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["summary", "sentiment", "insights", "actionItems", "topics", "escalation"],
  properties: {
    summary: { type: "string", description: "two or three sentences on what the call was about and how it ended" },
    sentiment: {
      type: "object",
      additionalProperties: false,
      required: ["score", "label"],
      properties: {
        score: { type: "number", description: "the caller's sentiment, -1 (very negative) to 1 (very positive)" },
        label: { type: "string", enum: ["positive", "neutral", "negative"] },
      },
    },
    insights: { type: "array", items: { type: "string" }, description: "at most 10 short observations" },
    actionItems: { type: "array", items: { type: "string" }, description: "what someone promised or was asked to do" },
    topics: { type: "array", items: { type: "string" }, description: "at most 10 topics, one or two words each" },
    escalation: {
      type: "object",
      additionalProperties: false,
      required: ["recommended", "reason"],
      properties: { recommended: { type: "boolean" }, reason: { type: ["string", "null"] } },
    },
  },
} as const;

/** One line of the conversation an engine reads. */
export interface AnalysisLine {
  /** `supervisor`: what a supervisor said to the caller during a takeover (the caller's side of it is `caller`). */
  role: "caller" | "agent" | "supervisor";
  text: string;
  interrupted: boolean;
}
