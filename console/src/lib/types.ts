/** The API's shapes the console reads, as the route files (workers/routes/*.ts) define them. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Session {
  id: string;
  channel: "phone" | "web";
  status: "active" | "ended";
  provider: string;
  instructions: string | null;
  prompt: { id: string; version: number } | null;
  metadata: Record<string, string | number | boolean>;
  correlationId: string;
  createdAt: string;
  endedAt: string | null;
}

export interface Call {
  id: string;
  sessionId: string;
  carrier: string;
  carrierCallId: string | null;
  direction: "inbound" | "outbound";
  from: string;
  to: string;
  status: string;
  failureReason: string | null;
  createdAt: string;
  answeredAt: string | null;
  endedAt: string | null;
}

export interface TranscriptLine {
  seq: number;
  role: "caller" | "agent" | "system" | "supervisor";
  text: string;
  provider: string;
  interrupted: boolean;
  at: string;
}

export interface Escalation {
  rule: string;
  reason: string;
  at: string;
  transfer: { to: string; ok: boolean; error: string | null } | null;
}

export interface SessionDetail extends Session {
  call: Call | null;
  transcript: TranscriptLine[];
  escalations: Escalation[];
}

export interface Analysis {
  status: "pending" | "ready" | "failed";
  summary: string | null;
  sentiment: { score: number; label: "positive" | "neutral" | "negative" } | null;
  insights: string[];
  actionItems: string[];
  topics: string[];
  escalation: { recommended: boolean; reason: string | null } | null;
  model: string | null;
  error: string | null;
  attempts: number;
}

export interface Recording {
  id: string;
  durationMs: number;
  channels: number;
  format: "wav";
  url: string;
  expiresAt: string;
}

export interface Customer {
  id: string;
  name: string;
  nickname: string | null;
  phone: string | null;
  email: string | null;
  language: string | null;
  notes: string | null;
  balance: number;
  createdAt: string;
  updatedAt: string;
}

export interface SearchMatch {
  customer: Customer;
  score: number;
  matchedOn: string[];
}

export interface InvoiceItem {
  productId: string | null;
  description: string;
  quantity: number;
  unit: string | null;
  unitPrice: number;
  amount: number;
}

export interface Invoice {
  id: string;
  customerId: string;
  status: "open" | "void";
  currency: string;
  total: number;
  notes: string | null;
  source: string;
  items: InvoiceItem[];
  createdAt: string;
  voidedAt: string | null;
  voidReason: string | null;
}

export interface LedgerEntry {
  id: string;
  kind: "invoice" | "payment" | "void";
  direction: "debit" | "credit";
  amount: number;
  balanceAfter: number;
  mode: string | null;
  reference: string | null;
  invoiceId: string | null;
  source: string;
  createdAt: string;
}

export interface Reminder {
  id: string;
  customerId: string;
  dueAt: string;
  channel: "sms" | "whatsapp" | "call";
  message: string;
  amount: number | null;
  state: "pending" | "sending" | "sent" | "failed" | "cancelled";
  attempts: number;
  lastError: string | null;
  createdAt: string;
  sentAt: string | null;
}

export const PROVIDERS = ["openai", "gemini", "deepgram", "local"] as const;
export const CARRIERS = ["twilio", "telnyx"] as const;
// The platform's own lists (a module with no imports, safe to bundle).
export { CALL_STATUSES, PAYMENT_MODES, REMINDER_CHANNELS, REMINDER_STATES, ROLES } from "../../../workers/shared/vocabulary.ts";
