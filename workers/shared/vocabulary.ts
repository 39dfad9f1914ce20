/**
 * The platform's fixed words that clients see: roles, call states, payment modes, reminder channels and states, the
 * agent's tools. No imports, so the web console bundles them as they are (the drizzle schema and the routes take
 * them from here too).
 */
export const ROLES = ["admin", "supervisor", "agent", "viewer"] as const;
export type Role = (typeof ROLES)[number];

export const CALL_STATUSES = [
  "initiated",
  "ringing",
  "in_progress",
  "on_hold",
  "transferring",
  "transferred",
  "completed",
  "failed",
] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];

export const PAYMENT_MODES = ["cash", "card", "upi", "bank", "other"] as const;
export const REMINDER_CHANNELS = ["sms", "whatsapp", "call"] as const;
export const REMINDER_STATES = ["pending", "sending", "sent", "failed", "cancelled"] as const;

/**
 * Every tool an agent can be given (durable-objects/voice/tools.ts and business-tools.ts); a prompt's allow-list
 * names only these. test/worker/routes/prompts.test.ts checks it against a live session's tool registry.
 */
export const TOOL_NAMES = [
  "end_call",
  "transfer_to_human",
  "find_customer",
  "get_balance",
  "list_invoices",
  "create_invoice",
  "record_payment",
  "schedule_reminder",
  "confirm_action",
] as const;
