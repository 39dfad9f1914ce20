import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * D1 schema. Every table that holds a tenant's data has a `tenant_id` column with an index; test/worker/schema
 * enumerates the tables to keep it so. Times are unix epoch milliseconds.
 */

export const tenants = sqliteTable("tenants", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: integer("created_at").notNull(),
});

export const ROLES = ["admin", "supervisor", "agent", "viewer"] as const;
export type Role = (typeof ROLES)[number];

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
    // Telnyx streaming codec for calls on this number.
    codec: text("codec", { enum: TELNYX_CODECS }).notNull().default("PCMU"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("phone_numbers_e164_unique").on(t.e164), index("phone_numbers_tenant_idx").on(t.tenantId)],
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
    correlationId: text("correlation_id").notNull(),
    // `user:<id>` or `api_key:<id>` for a web session (only it may join as the caller without sessions:supervise).
    createdBy: text("created_by"),
    createdAt: integer("created_at").notNull(),
    endedAt: integer("ended_at"),
  },
  (t) => [index("sessions_tenant_time_idx").on(t.tenantId, t.createdAt)],
);

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

/** A carrier leg attached to a session. The call's object is its only writer. */
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
  },
  (t) => [
    index("calls_tenant_time_idx").on(t.tenantId, t.createdAt),
    index("calls_tenant_status_idx").on(t.tenantId, t.status),
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

export const TRANSCRIPT_ROLES = ["caller", "agent", "system"] as const;

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
  (t) => [index("turn_timings_tenant_session_idx").on(t.tenantId, t.sessionId, t.providerFirstAudioAt)],
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
  (t) => [index("provider_switches_tenant_session_idx").on(t.tenantId, t.sessionId, t.startedAt)],
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
