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
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
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
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
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
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    userId: text("user_id").notNull().references(() => users.id),
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

/** Durable record of revoked access-token ids; KV holds the same with a TTL as the fast tier. */
export const revokedTokens = sqliteTable(
  "revoked_tokens",
  {
    jti: text("jti").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    userId: text("user_id").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [index("revoked_tokens_tenant_idx").on(t.tenantId), index("revoked_tokens_expiry_idx").on(t.expiresAt)],
);

export const auditLog = sqliteTable(
  "audit_log",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
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
