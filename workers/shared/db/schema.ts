import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { ESCALATION_RULES } from "../escalation.ts";
import { CALL_STATUSES, type CallStatus, PAYMENT_MODES, REMINDER_CHANNELS, REMINDER_STATES, ROLES, type Role } from "../vocabulary.ts";

export { CALL_STATUSES, type CallStatus, PAYMENT_MODES, REMINDER_CHANNELS, REMINDER_STATES, ROLES, type Role };

/**
 * D1 schema. Every table that holds a tenant's data has a `tenant_id` column with an index; test/worker/schema
 * enumerates the tables to keep it so. Times are unix epoch milliseconds.
 */

export const tenants = sqliteTable("tenants", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: integer("created_at").notNull(),
});

export const users = sqliteTable(
  "users",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    // Login is by email alone, so an email names one user across the platform.
    email: text("email").notNull(),
    role: text("role", { enum: ROLES }).notNull(),
    passwordHash: text("password_hash").notNull(),
    // Tokens issued before this instant (epoch seconds) are dead: set by revoke-all.
    tokensValidAfter: integer("tokens_valid_after").notNull().default(0),
    disabledAt: integer("disabled_at"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [uniqueIndex("users_email_unique").on(t.email), index("users_tenant_idx").on(t.tenantId)],
);

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    name: text("name").notNull(),
    role: text("role", { enum: ROLES }).notNull(),
    // SHA-256 of the secret part; the key itself is shown once at creation.
    secretHash: text("secret_hash").notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
    lastUsedAt: integer("last_used_at"),
    revokedAt: integer("revoked_at"),
  },
  (t) => [index("api_keys_tenant_idx").on(t.tenantId)],
);

export const refreshTokenFamilies = sqliteTable(
  "refresh_token_families",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    userId: text("user_id")
      .notNull()
      .references(() => users.id),
    // SHA-256 of the only refresh token of this family that may still be used.
    currentHash: text("current_hash").notNull(),
    generation: integer("generation").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    revokedAt: integer("revoked_at"),
    revokedReason: text("revoked_reason"),
  },
  (t) => [index("refresh_families_tenant_idx").on(t.tenantId), index("refresh_families_user_idx").on(t.userId)],
);

/**
 * Refresh tokens already spent by a rotation (their SHA-256): presenting one again is the copy a thief holds, and
 * revokes the family. A token that was never issued is only refused.
 */
export const spentRefreshTokens = sqliteTable(
  "spent_refresh_tokens",
  {
    tokenHash: text("token_hash").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    familyId: text("family_id")
      .notNull()
      .references(() => refreshTokenFamilies.id),
    spentAt: integer("spent_at").notNull(),
  },
  (t) => [index("spent_refresh_tokens_tenant_idx").on(t.tenantId), index("spent_refresh_tokens_family_idx").on(t.familyId)],
);

/** Durable record of revoked access-token ids; KV holds the same with a TTL as the fast tier. */
export const revokedTokens = sqliteTable(
  "revoked_tokens",
  {
    jti: text("jti").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    userId: text("user_id").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [index("revoked_tokens_tenant_idx").on(t.tenantId), index("revoked_tokens_expiry_idx").on(t.expiresAt)],
);

export const auditLog = sqliteTable(
  "audit_log",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    actorType: text("actor_type", { enum: ["user", "api_key", "system", "anonymous"] }).notNull(),
    actorId: text("actor_id"),
    action: text("action").notNull(),
    targetType: text("target_type"),
    targetId: text("target_id"),
    outcome: text("outcome", { enum: ["success", "failure"] }).notNull(),
    ip: text("ip"),
    correlationId: text("correlation_id"),
    details: text("details", { mode: "json" }).$type<Record<string, unknown>>(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("audit_tenant_time_idx").on(t.tenantId, t.createdAt)],
);

export const CARRIERS = ["twilio", "telnyx"] as const;
export type Carrier = (typeof CARRIERS)[number];
export const PROVIDER_NAMES = ["openai", "gemini", "deepgram", "local"] as const;
export const TELNYX_CODECS = ["PCMU", "PCMA"] as const;
/** A number's own recording setting; a number without one (null) follows its tenant's `recording`. */
export const RECORDING_MODES = ["off", "on"] as const;
export type RecordingMode = (typeof RECORDING_MODES)[number];

/** A tenant's phone numbers: inbound calls find their tenant by the called number. */
export const phoneNumbers = sqliteTable(
  "phone_numbers",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    e164: text("e164").notNull(),
    carrier: text("carrier", { enum: CARRIERS }).notNull(),
    provider: text("provider", { enum: PROVIDER_NAMES }),
    instructions: text("instructions"),
    // The versioned prompt calls to this number run (its current version at each call's start); wins over `instructions`.
    promptId: text("prompt_id"),
    // Telnyx streaming codec for calls on this number.
    codec: text("codec", { enum: TELNYX_CODECS }).notNull().default("PCMU"),
    // Whether calls to this number are recorded, over the tenant's setting; null: the tenant's.
    recording: text("recording", { enum: RECORDING_MODES }),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("phone_numbers_e164_unique").on(t.e164), index("phone_numbers_tenant_idx").on(t.tenantId)],
);

/** A tenant's agent prompt: a name and a pointer to its current version (moved by a new version or a rollback). */
export const prompts = sqliteTable(
  "prompts",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    name: text("name").notNull(),
    currentVersion: integer("current_version").notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("prompts_tenant_idx").on(t.tenantId)],
);

/** A prompt's versions, numbered from 1 per prompt; never updated, so a session's recorded version means one text. */
export const promptVersions = sqliteTable(
  "prompt_versions",
  {
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    promptId: text("prompt_id")
      .notNull()
      .references(() => prompts.id),
    version: integer("version").notNull(),
    instructions: text("instructions").notNull(),
    voice: text("voice"),
    // Tool names the agent may use; null: every tool.
    tools: text("tools", { mode: "json" }).$type<string[]>(),
    createdBy: text("created_by"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.promptId, t.version] }), index("prompt_versions_tenant_idx").on(t.tenantId)],
);

export const SESSION_CHANNELS = ["phone", "web"] as const;
export const SESSION_STATUSES = ["active", "ended"] as const;

/** One AI conversation; its live state is in the call's Durable Object named by `id`. */
export const sessions = sqliteTable(
  "sessions",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    channel: text("channel", { enum: SESSION_CHANNELS }).notNull(),
    status: text("status", { enum: SESSION_STATUSES }).notNull(),
    provider: text("provider", { enum: PROVIDER_NAMES }).notNull(),
    instructions: text("instructions"),
    // Context the agent is given with its instructions, carried across provider switches (web sessions: from the API).
    metadata: text("metadata", { mode: "json" }).$type<Record<string, string | number | boolean>>(),
    // The prompt and the version of it the session started with (a later rollback does not change a running session).
    promptId: text("prompt_id"),
    promptVersion: integer("prompt_version"),
    correlationId: text("correlation_id").notNull(),
    // `user:<id>` or `api_key:<id>` for a web session (only it may join as the caller without sessions:supervise).
    createdBy: text("created_by"),
    createdAt: integer("created_at").notNull(),
    endedAt: integer("ended_at"),
    // When retention deleted what was said (transcript, analysis, recording); the row itself stays for the books.
    contentPurgedAt: integer("content_purged_at"),
  },
  (t) => [index("sessions_tenant_time_idx").on(t.tenantId, t.createdAt)],
);

/** A carrier leg attached to a session. The call's object is its only writer. */
/** What an outbound call does when a machine answers: hang up, or leave the call's voicemail message after the beep. */
export const MACHINE_DETECTION_MODES = ["hangup", "voicemail"] as const;
export type MachineDetectionMode = (typeof MACHINE_DETECTION_MODES)[number];
/** Who answered, by the carrier's detection (its finer results folded in: `not_sure` is `unknown`). */
export const ANSWERED_BY = ["human", "machine", "fax", "unknown"] as const;
export type AnsweredBy = (typeof ANSWERED_BY)[number];
/** `agent`: the conversation went ahead; the other two end the call without the agent saying a word. */
export const MACHINE_OUTCOMES = ["agent", "machine_hangup", "voicemail_left"] as const;
export type MachineOutcome = (typeof MACHINE_OUTCOMES)[number];

export const calls = sqliteTable(
  "calls",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    sessionId: text("session_id").notNull(),
    carrier: text("carrier", { enum: CARRIERS }).notNull(),
    carrierCallId: text("carrier_call_id"),
    direction: text("direction", { enum: ["inbound", "outbound"] }).notNull(),
    fromNumber: text("from_number").notNull(),
    toNumber: text("to_number").notNull(),
    status: text("status", { enum: CALL_STATUSES }).notNull(),
    failureReason: text("failure_reason"),
    answeredAt: integer("answered_at"),
    endedAt: integer("ended_at"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    // Answering-machine detection on an outbound call (null: none asked): what was asked, who answered, what was done.
    machineDetection: text("machine_detection", { enum: MACHINE_DETECTION_MODES }),
    answeredBy: text("answered_by", { enum: ANSWERED_BY }),
    machineOutcome: text("machine_outcome", { enum: MACHINE_OUTCOMES }),
    // The voicemail left: its length and a SHA-256 of its text, never the text (it is the tenant's, kept in the call's object).
    voicemailChars: integer("voicemail_chars"),
    voicemailSha256: text("voicemail_sha256"),
  },
  (t) => [
    index("calls_tenant_time_idx").on(t.tenantId, t.createdAt),
    index("calls_tenant_status_idx").on(t.tenantId, t.status),
    // A privacy export finds a person's calls by their number, either way round.
    index("calls_tenant_from_idx").on(t.tenantId, t.fromNumber),
    index("calls_tenant_to_idx").on(t.tenantId, t.toNumber),
    // The reconcile cron looks across tenants for live calls with no news.
    index("calls_status_updated_idx").on(t.status, t.updatedAt),
    uniqueIndex("calls_carrier_call_unique").on(t.carrier, t.carrierCallId),
  ],
);

/**
 * The reconcile cron's memory of a stuck call it could not settle (the carrier says it is still live, the carrier or
 * the object did not answer): when to ask again and what happened last. The cron is its only writer (the call's row
 * stays the object's), so a call that cannot be settled waits its turn instead of taking every run's batch.
 */
export const callReconcile = sqliteTable(
  "call_reconcile",
  {
    callId: text("call_id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    attempts: integer("attempts").notNull(),
    // Epoch ms before which the cron leaves the call alone; null once it has given up (`outcome` says why).
    nextAttemptAt: integer("next_attempt_at"),
    outcome: text("outcome").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("call_reconcile_tenant_idx").on(t.tenantId), index("call_reconcile_next_idx").on(t.nextAttemptAt)],
);

/** Every transition and every carrier event of a call, in the order the object applied them. */
export const callEvents = sqliteTable(
  "call_events",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    callId: text("call_id").notNull(),
    seq: integer("seq").notNull(),
    source: text("source", { enum: ["carrier", "api", "system"] }).notNull(),
    event: text("event").notNull(),
    fromStatus: text("from_status", { enum: CALL_STATUSES }),
    toStatus: text("to_status", { enum: CALL_STATUSES }),
    outcome: text("outcome", { enum: ["applied", "ignored", "rejected"] }).notNull(),
    carrierSequence: integer("carrier_sequence"),
    carrierTimestamp: integer("carrier_timestamp"),
    detail: text("detail"),
    occurredAt: integer("occurred_at").notNull(),
  },
  (t) => [
    index("call_events_tenant_call_idx").on(t.tenantId, t.callId, t.seq),
    uniqueIndex("call_events_call_seq_unique").on(t.callId, t.seq),
  ],
);

/** `supervisor`: a supervisor's words to the caller during a takeover (their own speech-to-text, not the provider's). */
export const TRANSCRIPT_ROLES = ["caller", "agent", "system", "supervisor"] as const;

/**
 * What was said in a session, line by line. The call's object keeps the recent lines in its own storage and drains
 * them here in batches; a line re-queued after it was cut off (interrupted) is upserted by id.
 */
export const transcriptLines = sqliteTable(
  "transcript_lines",
  {
    // `${sessionId}:${seq}`
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    sessionId: text("session_id").notNull(),
    seq: integer("seq").notNull(),
    role: text("role", { enum: TRANSCRIPT_ROLES }).notNull(),
    text: text("text").notNull(),
    provider: text("provider", { enum: PROVIDER_NAMES }).notNull(),
    interrupted: integer("interrupted", { mode: "boolean" }).notNull().default(false),
    itemId: text("item_id"),
    occurredAt: integer("occurred_at").notNull(),
  },
  (t) => [
    index("transcript_lines_tenant_session_idx").on(t.tenantId, t.sessionId, t.seq),
    uniqueIndex("transcript_lines_session_seq_unique").on(t.sessionId, t.seq),
  ],
);

/**
 * Latency at the caller's ear, one row per agent turn (durable-objects/voice/turn-clock.ts): the instants of the
 * reply, epoch ms, null where a point never happened. Drained from the call's object with its transcript lines, in
 * the same batches; written once (a turn is recorded when it is over).
 */
export const turnTimings = sqliteTable(
  "turn_timings",
  {
    // `${sessionId}:${providerFirstAudioAt}:${itemId}` (item ids are unique only within a provider session)
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    sessionId: text("session_id").notNull(),
    provider: text("provider", { enum: PROVIDER_NAMES }).notNull(),
    itemId: text("item_id").notNull(),
    callerStoppedAt: integer("caller_stopped_at"),
    providerFirstAudioAt: integer("provider_first_audio_at").notNull(),
    firstFrameSentAt: integer("first_frame_sent_at"),
    firstMarkHeardAt: integer("first_mark_heard_at"),
    interrupted: integer("interrupted", { mode: "boolean" }).notNull().default(false),
  },
  (t) => [
    index("turn_timings_tenant_session_idx").on(t.tenantId, t.sessionId, t.providerFirstAudioAt),
    // Analytics read a tenant's turns by time range, across sessions.
    index("turn_timings_tenant_time_idx").on(t.tenantId, t.providerFirstAudioAt),
  ],
);

export const SWITCH_REASONS = ["manual", "auto_failover", "rollover"] as const;
export type SwitchReason = (typeof SWITCH_REASONS)[number];

/** Every provider switch of a session: who asked (reason), how long it took and how it ended. */
export const providerSwitches = sqliteTable(
  "provider_switches",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    sessionId: text("session_id").notNull(),
    fromProvider: text("from_provider", { enum: PROVIDER_NAMES }).notNull(),
    toProvider: text("to_provider", { enum: PROVIDER_NAMES }).notNull(),
    reason: text("reason", { enum: SWITCH_REASONS }).notNull(),
    outcome: text("outcome", { enum: ["succeeded", "failed"] }).notNull(),
    error: text("error"),
    messagesCarried: integer("messages_carried").notNull(),
    startedAt: integer("started_at").notNull(),
    durationMs: integer("duration_ms").notNull(),
  },
  (t) => [
    index("provider_switches_tenant_session_idx").on(t.tenantId, t.sessionId, t.startedAt),
    // Analytics read a tenant's switches by time range, across sessions.
    index("provider_switches_tenant_time_idx").on(t.tenantId, t.startedAt),
  ],
);

/**
 * A tenant's own settings (`/api/v1/tenant/settings`): one JSON document per tenant, parsed by one zod schema
 * (`workers/shared/tenant-settings.ts`), so a new setting is a field of that schema, not a migration. A tenant with no
 * row has every default.
 */
export const tenantSettings = sqliteTable("tenant_settings", {
  tenantId: text("tenant_id")
    .primaryKey()
    .references(() => tenants.id),
  settings: text("settings", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
  updatedAt: integer("updated_at").notNull(),
});

// ── Business engine (issue: customers, products, invoices, ledger, reminders, WhatsApp) ──────────────────────────
// Money is an integer in the minor unit of the tenant's currency (tenant settings `currency`); no floats anywhere.

/**
 * A shop's customer. `balance` is what the customer owes (debits minus credits), kept in the same D1 batch as every
 * ledger entry so it always equals the ledger's sum. `phonetic` holds the sound codes of the name's and nickname's
 * tokens (space separated, written by the business engine on every name change) so a misheard name still finds its
 * customer through an index rather than a scan.
 */
export const customers = sqliteTable(
  "customers",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    name: text("name").notNull(),
    nickname: text("nickname"),
    // E.164; one customer per phone per tenant.
    phone: text("phone"),
    email: text("email"),
    language: text("language"),
    notes: text("notes"),
    balance: integer("balance").notNull().default(0),
    phonetic: text("phonetic").notNull().default(""),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [
    index("customers_tenant_name_idx").on(t.tenantId, t.name),
    uniqueIndex("customers_tenant_phone_unique").on(t.tenantId, t.phone),
    index("customers_tenant_email_idx").on(t.tenantId, t.email),
  ],
);

export const products = sqliteTable(
  "products",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    name: text("name").notNull(),
    unitPrice: integer("unit_price").notNull(),
    unit: text("unit"),
    sku: text("sku"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("products_tenant_name_idx").on(t.tenantId, t.name), uniqueIndex("products_tenant_sku_unique").on(t.tenantId, t.sku)],
);

export const INVOICE_STATUSES = ["open", "void"] as const;
/** Where a write came from: the REST API, a voice agent's tool, a WhatsApp conversation or the reminder sender. */
export const BUSINESS_SOURCES = ["api", "voice", "whatsapp", "system"] as const;

export const invoices = sqliteTable(
  "invoices",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    customerId: text("customer_id")
      .notNull()
      .references(() => customers.id),
    status: text("status", { enum: INVOICE_STATUSES }).notNull(),
    currency: text("currency").notNull(),
    total: integer("total").notNull(),
    notes: text("notes"),
    source: text("source", { enum: BUSINESS_SOURCES }).notNull(),
    createdBy: text("created_by"),
    createdAt: integer("created_at").notNull(),
    voidedAt: integer("voided_at"),
    voidReason: text("void_reason"),
  },
  (t) => [
    index("invoices_tenant_time_idx").on(t.tenantId, t.createdAt),
    index("invoices_tenant_customer_idx").on(t.tenantId, t.customerId, t.createdAt),
  ],
);

export const invoiceItems = sqliteTable(
  "invoice_items",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    invoiceId: text("invoice_id")
      .notNull()
      .references(() => invoices.id),
    productId: text("product_id").references(() => products.id),
    description: text("description").notNull(),
    // Thousandths of the unit, so "half a kilo" (500) and "a dozen" (12,000) are exact integers.
    quantityMilli: integer("quantity_milli").notNull(),
    unit: text("unit"),
    unitPrice: integer("unit_price").notNull(),
    amount: integer("amount").notNull(),
  },
  (t) => [index("invoice_items_tenant_invoice_idx").on(t.tenantId, t.invoiceId)],
);

export const LEDGER_DIRECTIONS = ["debit", "credit"] as const;
export const LEDGER_KINDS = ["invoice", "payment", "void"] as const;

/**
 * Every movement of a customer's balance, append-only. `balanceAfter` is the customer's balance once this entry is
 * applied, written in the same batch as the balance itself, so the ledger reads as a running account.
 */
export const ledgerEntries = sqliteTable(
  "ledger_entries",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    customerId: text("customer_id")
      .notNull()
      .references(() => customers.id),
    kind: text("kind", { enum: LEDGER_KINDS }).notNull(),
    direction: text("direction", { enum: LEDGER_DIRECTIONS }).notNull(),
    amount: integer("amount").notNull(),
    mode: text("mode", { enum: PAYMENT_MODES }),
    reference: text("reference"),
    invoiceId: text("invoice_id").references(() => invoices.id),
    balanceAfter: integer("balance_after").notNull(),
    source: text("source", { enum: BUSINESS_SOURCES }).notNull(),
    createdBy: text("created_by"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    index("ledger_entries_tenant_customer_idx").on(t.tenantId, t.customerId, t.createdAt),
    index("ledger_entries_tenant_invoice_idx").on(t.tenantId, t.invoiceId),
  ],
);

export const reminders = sqliteTable(
  "reminders",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    customerId: text("customer_id")
      .notNull()
      .references(() => customers.id),
    dueAt: integer("due_at").notNull(),
    channel: text("channel", { enum: REMINDER_CHANNELS }).notNull(),
    message: text("message").notNull(),
    amount: integer("amount"),
    state: text("state", { enum: REMINDER_STATES }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: integer("next_attempt_at").notNull(),
    lastError: text("last_error"),
    // The carrier's or Cloud API's message id, or the outbound call's session id, once sent.
    externalId: text("external_id"),
    source: text("source", { enum: BUSINESS_SOURCES }).notNull(),
    createdBy: text("created_by"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    sentAt: integer("sent_at"),
  },
  (t) => [
    index("reminders_tenant_due_idx").on(t.tenantId, t.state, t.nextAttemptAt),
    index("reminders_tenant_customer_idx").on(t.tenantId, t.customerId),
    // A WhatsApp receipt finds its reminder by Meta's message id alone (workers/business/reminders/receipts.ts).
    index("reminders_external_idx").on(t.externalId),
  ],
);

export const MESSAGE_DIRECTIONS = ["inbound", "outbound"] as const;

/** WhatsApp messages both ways; an inbound message id is stored once, so Meta's redeliveries are recognised. */
export const whatsappMessages = sqliteTable(
  "whatsapp_messages",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    // Meta's message id (`wamid…`).
    messageId: text("message_id").notNull(),
    direction: text("direction", { enum: MESSAGE_DIRECTIONS }).notNull(),
    // The other party's WhatsApp id (digits of their number).
    waId: text("wa_id").notNull(),
    customerId: text("customer_id").references(() => customers.id),
    body: text("body").notNull(),
    intent: text("intent", { mode: "json" }).$type<Record<string, unknown>>(),
    status: text("status").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    uniqueIndex("whatsapp_messages_tenant_message_unique").on(t.tenantId, t.messageId),
    index("whatsapp_messages_tenant_wa_idx").on(t.tenantId, t.waId, t.createdAt),
    // The cron's sweep for messages whose answer was abandoned (`status = 'received'` minutes after they came).
    index("whatsapp_messages_status_idx").on(t.status, t.createdAt),
  ],
);

/**
 * `Idempotency-Key` (and a tool call's id): the first request with a key stores a hash of its body and, once done, its
 * answer; a retry with the same body gets that answer, with another body a 422. Keys are scoped per tenant and route.
 */
export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    scope: text("scope").notNull(),
    key: text("key").notNull(),
    requestHash: text("request_hash").notNull(),
    responseStatus: integer("response_status"),
    responseBody: text("response_body"),
    createdAt: integer("created_at").notNull(),
  },
  // created_at: the cron's purge of keys past their retention reads only those.
  (t) => [primaryKey({ columns: [t.tenantId, t.scope, t.key] }), index("idempotency_keys_created_idx").on(t.createdAt)],
);

/**
 * A write done under an idempotency key, committed in the write's own transaction: at most one row per key (a second
 * write's insert fails and takes its whole batch with it), and a key whose answer was never stored (its Worker died
 * between the write and the answer) is answered from `ref`, the id of what the write made.
 */
export const idempotencyWrites = sqliteTable(
  "idempotency_writes",
  {
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    scope: text("scope").notNull(),
    key: text("key").notNull(),
    ref: text("ref").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.scope, t.key] }), index("idempotency_writes_created_idx").on(t.createdAt)],
);

export const ANALYSIS_STATUSES = ["pending", "ready", "failed"] as const;
export const ANALYSIS_ENGINES = ["openai", "gemini", "local"] as const;

/**
 * Post-call analysis of a session (workers/shared/analysis/): one row per ended session, `pending` until an engine answers,
 * retried with backoff from the session's object (its alarm) and the cron; `failed` with a reason after the last try.
 */
export const sessionAnalysis = sqliteTable(
  "session_analysis",
  {
    sessionId: text("session_id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    status: text("status", { enum: ANALYSIS_STATUSES }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: integer("next_attempt_at").notNull(),
    // The analysis itself (workers/shared/analysis/result.ts), once ready.
    result: text("result", { mode: "json" }).$type<Record<string, unknown>>(),
    engine: text("engine", { enum: ANALYSIS_ENGINES }),
    model: text("model"),
    inputTokens: integer("input_tokens").notNull().default(0),
    outputTokens: integer("output_tokens").notNull().default(0),
    error: text("error"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("session_analysis_tenant_idx").on(t.tenantId, t.status), index("session_analysis_due_idx").on(t.status, t.nextAttemptAt)],
);

/**
 * Each escalation of a session (workers/shared/escalation.ts): one row per rule that fired, at most once per session
 * and rule, written by the session's object (its storage first, then here, retried from its alarm). `transfer_*` says
 * what became of the transfer the rules asked for, when one was attempted. Analytics count them per bucket by `at`.
 */
export const sessionEscalations = sqliteTable(
  "session_escalations",
  {
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    sessionId: text("session_id").notNull(),
    rule: text("rule", { enum: ESCALATION_RULES }).notNull(),
    reason: text("reason").notNull(),
    transferTo: text("transfer_to"),
    transferOk: integer("transfer_ok", { mode: "boolean" }),
    transferError: text("transfer_error"),
    at: integer("at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.sessionId, t.rule] }),
    index("session_escalations_tenant_session_idx").on(t.tenantId, t.sessionId),
    index("session_escalations_tenant_time_idx").on(t.tenantId, t.at),
  ],
);

/**
 * A session's recording (durable-objects/recording/): a two-channel WAV (caller left, agent right) whose parts are in R2
 * under `recordings/{tenantId}/{sessionId}/` (`r2Key`; a joined `recording.wav` for rows written before parts were
 * served as they are); the row is written by the call's object when the session ends. The row is what the
 * Sessions API and the signed link read; erasure and retention find a session's audio by that prefix.
 */
export const recordings = sqliteTable(
  "recordings",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    sessionId: text("session_id").notNull(),
    r2Key: text("r2_key").notNull(),
    durationMs: integer("duration_ms").notNull(),
    bytes: integer("bytes").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("recordings_session_idx").on(t.tenantId, t.sessionId), index("recordings_tenant_idx").on(t.tenantId, t.createdAt)],
);

export const ERASURE_STATUSES = ["pending", "dead", "sweeping", "done"] as const;
export type ErasureStatus = (typeof ERASURE_STATUSES)[number];

/**
 * A privacy erasure (workers/privacy/erasure.ts): `pending` until the requesting admin confirms the emailed code,
 * `dead` once its tries or its time ran out, `sweeping` while the deletion runs (`step` is the next step to run, so
 * the cron resumes an interrupted sweep where it stopped), `done` after. `targets` holds the person's phone numbers
 * and customer ids for as long as the sweep needs them and is cleared when it is done; `subject_hash` stays.
 */
export const erasureRequests = sqliteTable(
  "erasure_requests",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    requestedBy: text("requested_by").notNull(),
    subjectHash: text("subject_hash").notNull(),
    targets: text("targets", { mode: "json" }).$type<{ phones: string[]; customerIds: string[] }>(),
    // SHA-256 of the request id and the code: the code itself is only ever in the email.
    codeHash: text("code_hash").notNull(),
    attempts: integer("attempts").notNull().default(0),
    expiresAt: integer("expires_at").notNull(),
    status: text("status", { enum: ERASURE_STATUSES }).notNull(),
    step: integer("step").notNull().default(0),
    createdAt: integer("created_at").notNull(),
    confirmedAt: integer("confirmed_at"),
    completedAt: integer("completed_at"),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("erasure_requests_tenant_idx").on(t.tenantId, t.createdAt), index("erasure_requests_status_idx").on(t.status, t.updatedAt)],
);
