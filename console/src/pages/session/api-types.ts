import type { LiveEvent } from "../../lib/live.ts";

/**
 * The API shapes the live pages read, as the route files answer them (workers/routes/sessions.ts, calls.ts,
 * session-switching.ts, providers.ts): only the fields these pages use.
 */
export type ProviderName = "openai" | "gemini" | "deepgram" | "local";
export const PROVIDERS: readonly ProviderName[] = ["openai", "gemini", "deepgram", "local"];

export type CallStatus = "initiated" | "ringing" | "in_progress" | "on_hold" | "transferring" | "transferred" | "completed" | "failed";
export const ENDED_CALL_STATUSES: readonly CallStatus[] = ["transferred", "completed", "failed"];

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface SessionSummary {
  id: string;
  channel: "phone" | "web";
  status: "active" | "ended";
  provider: ProviderName;
  createdAt: string;
  endedAt: string | null;
}

export interface CallSummary {
  id: string;
  sessionId: string;
  carrier: "twilio" | "telnyx";
  direction: "inbound" | "outbound";
  from: string;
  to: string;
  status: CallStatus;
  failureReason: string | null;
  createdAt: string;
  answeredAt: string | null;
  endedAt: string | null;
}

export interface TranscriptLine {
  seq: number;
  role: "caller" | "agent" | "system" | "supervisor";
  text: string;
  provider: ProviderName;
  interrupted: boolean;
  at: string;
}

export interface Turn {
  seq: number;
  provider: ProviderName;
  callerStoppedAt: string | null;
  providerFirstAudioAt: string;
  firstFrameSentAt: string | null;
  firstMarkHeardAt: string | null;
  stages: { providerMs: number | null; platformMs: number | null; carrierMs: number | null; earMs: number | null };
  interrupted: boolean;
}

export interface Escalation {
  rule: "keyword" | "sentiment" | "tool_failures";
  reason: string;
  at: string;
  transfer: { to: string; ok: boolean; error: string | null } | null;
}

export interface SessionDetail extends SessionSummary {
  call: CallSummary | null;
  transcript: TranscriptLine[];
  turns: Turn[];
  escalations: Escalation[];
  live: { provider: ProviderName; providerState: string; counters: Record<string, number> } | null;
}

export interface SwitchEntry {
  id: string;
  fromProvider: ProviderName;
  toProvider: ProviderName;
  reason: "manual" | "auto_failover" | "rollover";
  outcome: "succeeded" | "failed";
  error: string | null;
  messagesCarried: number;
  startedAt: string;
  durationMs: number;
}

export interface SwitchResult {
  success: boolean;
  fromProvider: ProviderName;
  toProvider: ProviderName;
  contextPreserved: number;
  durationMs: number;
  error: string | null;
}

export interface ProviderHealth {
  provider: ProviderName;
  state: "healthy" | "degraded" | "unhealthy" | "offline" | "unknown";
  configured: boolean;
  successRate: number | null;
  errorRate: number | null;
  p95LatencyMs: number | null;
  samples: number;
  lastSuccessAt: string | null;
  lastFailureAt: string | null;
}

export type SentimentEvent = Extract<LiveEvent, { type: "sentiment" }>;
export type Sentiment = SentimentEvent["turn"];

/** Words for a call's status, as a person reads them. */
export function callStatusText(status: CallStatus | null | undefined): string {
  if (!status) return "no call";
  return status.replace("_", " ");
}
