import { and, asc, eq, gt, or } from "drizzle-orm";
import { z } from "zod";
import { customers, REMINDER_CHANNELS, REMINDER_STATES, reminders } from "../../shared/db/schema.ts";
import type { TenantScope } from "../../shared/db/tenant-scope.ts";
import { BusinessCache } from "../cache.ts";
import { BusinessError } from "../errors.ts";
import type { WriteMark } from "../idempotency.ts";
import { pokeScheduler } from "./scheduler-link.ts";

/** Who asked: the REST API (a user or key), the voice agent, WhatsApp, or the platform itself. */
export interface ReminderActor {
  source: "api" | "voice" | "whatsapp" | "system";
  by?: string;
}

/** A reminder further ahead than this is almost certainly a mistaken date (a year typed wrong), not a plan. */
export const MAX_LEAD_MS = 366 * 24 * 60 * 60_000;
/** An SMS of this length is at most three or four segments; a spoken reminder stays under a minute. */
export const MAX_MESSAGE_CHARS = 480;
/** Amounts are integers in the minor unit; this bound keeps them exact (far below 2^53). */
export const MAX_AMOUNT = 1_000_000_000_000;

export const reminderInputSchema = z.strictObject({
  customerId: z.string().min(1).max(64),
  dueAt: z.iso.datetime({ offset: true }).describe("when to deliver (ISO 8601, with a zone)"),
  message: z.string().trim().min(1).max(MAX_MESSAGE_CHARS),
  amount: z.number().int().positive().max(MAX_AMOUNT).optional().describe("in the minor unit of the tenant's currency"),
  channel: z.enum(REMINDER_CHANNELS),
});
export type ReminderInput = z.infer<typeof reminderInputSchema>;

export const reminderSchema = z.object({
  id: z.string(),
  customerId: z.string(),
  dueAt: z.string(),
  channel: z.enum(REMINDER_CHANNELS),
  message: z.string(),
  amount: z.number().nullable(),
  state: z.enum(REMINDER_STATES),
  attempts: z.number(),
  nextAttemptAt: z.string().nullable(),
  lastError: z.string().nullable(),
  externalId: z.string().nullable(),
  source: z.string(),
  createdAt: z.string(),
  sentAt: z.string().nullable(),
});
export type ReminderView = z.infer<typeof reminderSchema>;
export type ReminderRow = typeof reminders.$inferSelect;

const iso = (ms: number) => new Date(ms).toISOString();

export const presentReminder = (row: ReminderRow): ReminderView => ({
  id: row.id,
  customerId: row.customerId,
  dueAt: iso(row.dueAt),
  channel: row.channel,
  message: row.message,
  amount: row.amount,
  state: row.state,
  attempts: row.attempts,
  // Only a pending reminder has a next attempt; while sending the column holds the claim's lease.
  nextAttemptAt: row.state === "pending" ? iso(row.nextAttemptAt) : null,
  lastError: row.lastError,
  externalId: row.externalId,
  source: row.source,
  createdAt: iso(row.createdAt),
  sentAt: row.sentAt === null ? null : iso(row.sentAt),
});

/**
 * Schedules a reminder for one of the tenant's customers, who must have a phone (every channel needs one), at a time
 * in the future and within a year. The tenant's scheduler object is told, so its alarm fires at `dueAt`. With an
 * idempotency key's `mark`, the key's proof of the write is committed with the reminder (idempotency.ts).
 */
export async function scheduleReminder(
  env: Env,
  scope: TenantScope,
  actor: ReminderActor,
  raw: ReminderInput,
  mark?: WriteMark,
): Promise<ReminderView> {
  const now = Date.now();
  const parsed = reminderInputSchema.safeParse(raw);
  if (!parsed.success) {
    const field = String(parsed.error.issues[0]?.path[0] ?? "reminder");
    throw new BusinessError(field === "amount" ? "invalid_amount" : "invalid_reminder", 400, `The reminder's ${field} is not valid`);
  }
  const input = parsed.data;
  const dueAt = Date.parse(input.dueAt);
  if (dueAt <= now) throw new BusinessError("reminder_in_past", 422, "That time has already passed");
  if (dueAt - now > MAX_LEAD_MS) throw new BusinessError("reminder_too_far", 422, "That is more than a year ahead");
  const [customer] = (await scope.select(customers, eq(customers.id, input.customerId))) as Array<typeof customers.$inferSelect>;
  if (!customer) throw new BusinessError("customer_not_found", 404, "Customer not found");
  if (!customer.phone)
    throw new BusinessError("customer_unreachable", 422, `The customer has no phone number for a ${input.channel} reminder`);
  const row: ReminderRow = {
    id: crypto.randomUUID(),
    tenantId: scope.tenantId,
    customerId: customer.id,
    dueAt,
    channel: input.channel,
    message: input.message,
    amount: input.amount ?? null,
    state: "pending",
    attempts: 0,
    nextAttemptAt: dueAt,
    lastError: null,
    externalId: null,
    source: actor.source,
    createdBy: actor.by ?? null,
    createdAt: now,
    updatedAt: now,
    sentAt: null,
  };
  if (mark) await scope.batch([scope.insert(reminders, row), mark(row.id)]);
  else await scope.insert(reminders, row);
  return writtenReminder(env, scope, row);
}

/**
 * After a reminder is written: cached queue reads dropped and the scheduler told. Also for a write never answered
 * for (idempotency.ts), whose Worker may have died before doing either; both are harmless twice.
 */
export async function writtenReminder(env: Env, scope: TenantScope, written: ReminderRow | string): Promise<ReminderView> {
  const row = typeof written === "string" ? await reminderRow(scope, written) : written;
  await reminderQueueChanged(env, scope);
  await pokeScheduler(env, scope.tenantId);
  return presentReminder(row);
}

export interface ReminderFilter {
  state?: (typeof REMINDER_STATES)[number];
  customerId?: string;
  limit?: number;
  /** The last reminder of the previous page: due time, then id. */
  after?: { dueAt: number; id: string };
}

/** The tenant's reminders, soonest due first (the reminder queue: cached, dropped by every change of a reminder). */
export function listReminders(env: { CACHE: KVNamespace }, scope: TenantScope, filter: ReminderFilter = {}): Promise<ReminderRow[]> {
  return new BusinessCache(env.CACHE, scope.tenantId).read("reminder_queue", JSON.stringify(filter), () => reminderPage(scope, filter));
}

/** After any write to the tenant's reminders (scheduled, cancelled, claimed, settled): cached queue reads are dropped. */
export const reminderQueueChanged = (env: { CACHE: KVNamespace }, scope: TenantScope) =>
  new BusinessCache(env.CACHE, scope.tenantId).invalidate("reminder_queue");

async function reminderPage(scope: TenantScope, filter: ReminderFilter): Promise<ReminderRow[]> {
  const { after } = filter;
  return (await scope
    .select(
      reminders,
      filter.state ? eq(reminders.state, filter.state) : undefined,
      filter.customerId ? eq(reminders.customerId, filter.customerId) : undefined,
      after ? or(gt(reminders.dueAt, after.dueAt), and(eq(reminders.dueAt, after.dueAt), gt(reminders.id, after.id))) : undefined,
    )
    .orderBy(asc(reminders.dueAt), asc(reminders.id))
    .limit(filter.limit ?? 50)) as ReminderRow[];
}

/**
 * Cancels a reminder that has not started sending. The state test is in the UPDATE itself, so a cancel racing the
 * scheduler's claim either wins (nothing is sent) or loses (409): never both. Cancelling twice answers the same.
 */
export async function cancelReminder(env: Env, scope: TenantScope, id: string, now = Date.now()): Promise<ReminderView> {
  const [cancelled] = (await scope
    .update(reminders, { state: "cancelled", updatedAt: now }, eq(reminders.id, id), eq(reminders.state, "pending"))
    .returning()) as ReminderRow[];
  if (cancelled) {
    await reminderQueueChanged(env, scope);
    await pokeScheduler(env, scope.tenantId);
    return presentReminder(cancelled);
  }
  const row = await reminderRow(scope, id);
  if (row.state === "cancelled") return presentReminder(row);
  throw new BusinessError("reminder_not_pending", 409, `The reminder is already ${row.state}; only a pending reminder can be cancelled`);
}

async function reminderRow(scope: TenantScope, id: string): Promise<ReminderRow> {
  const [row] = (await scope.select(reminders, eq(reminders.id, id))) as ReminderRow[];
  if (!row) throw new BusinessError("reminder_not_found", 404, "Reminder not found");
  return row;
}
