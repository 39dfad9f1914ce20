import { and, eq, inArray, lte, or, sql } from "drizzle-orm";
import { customers, reminders } from "../../shared/db/schema.ts";
import type { TenantScope } from "../../shared/db/tenant-scope.ts";
import type { Logger } from "../../shared/logger.ts";
import { metrics } from "../../shared/observability/metrics.ts";
import { parseSettings } from "../../shared/settings.ts";
import { readTenantSettings } from "../../shared/tenant-settings.ts";
import { DeliveryError, reminderChannels } from "./channels.ts";
import { type ReminderRow, reminderQueueChanged } from "./reminders.ts";

/**
 * How long a claimed reminder may stay `sending`. Past it, whoever claimed it is gone (the object was evicted or
 * crashed between claim and result) and nobody knows whether the message went: it is marked failed with
 * `outcome_unknown`, never sent again (see README, "Reminders").
 */
export const SENDING_LEASE_MS = 5 * 60_000;
export const OUTCOME_UNKNOWN = "outcome_unknown";
/** Reminders handled per run; more due ones make the scheduler run again at once. */
const BATCH = 25;

/** Attempt `n` (1-based) failed: the next one waits base × 2^(n − 1). */
export const backoffMs = (env: Env, attempt: number) => parseSettings(env).values.REMINDER_RETRY_BASE_SECONDS * 1000 * 2 ** (attempt - 1);

/**
 * Delivers the tenant's due reminders and answers when to run next (null: nothing pending). Each reminder is first
 * CLAIMED by one conditional UPDATE (pending and due → sending, attempts + 1); only a run whose claim changed the row
 * sends it, so a duplicate alarm, a retried alarm or a second object for the same tenant never sends twice.
 */
export async function deliverDue(env: Env, scope: TenantScope, log: Logger, now = Date.now()): Promise<number | null> {
  if (await expireLeases(scope, log, now)) await reminderQueueChanged(env, scope);
  const due = (await scope
    .select(reminders, eq(reminders.state, "pending"), lte(reminders.nextAttemptAt, now))
    .orderBy(reminders.nextAttemptAt)
    .limit(BATCH)) as ReminderRow[];
  await Promise.all(due.map((row) => deliverOne(env, scope, log, row.id, now)));
  if (due.length === BATCH) return now;
  return nextWake(scope);
}

/** The earliest time anything of the tenant's needs the scheduler: a pending reminder's attempt or a lease's end. */
export async function nextWake(scope: TenantScope): Promise<number | null> {
  const [row] = await scope
    .select(reminders, inArray(reminders.state, ["pending", "sending"]))
    .orderBy(reminders.nextAttemptAt)
    .limit(1);
  return (row as ReminderRow | undefined)?.nextAttemptAt ?? null;
}

/** Rows left `sending` past their lease: the sender vanished mid-send. Final, because the message may have gone. */
async function expireLeases(scope: TenantScope, log: Logger, now: number) {
  const expired = (await scope
    .update(
      reminders,
      { state: "failed", lastError: OUTCOME_UNKNOWN, updatedAt: now },
      eq(reminders.state, "sending"),
      lte(reminders.nextAttemptAt, now),
    )
    .returning()) as ReminderRow[];
  for (const row of expired) {
    metrics.count("reminders_sent_total", { channel: row.channel, outcome: "failed" });
    log.warn("reminder.outcome_unknown", { reminderId: row.id, channel: row.channel, attempts: row.attempts });
  }
  return expired.length > 0;
}

async function deliverOne(env: Env, scope: TenantScope, log: Logger, id: string, now: number) {
  const [claimed] = (await scope
    .update(
      reminders,
      { state: "sending", attempts: sql`${reminders.attempts} + 1`, nextAttemptAt: now + SENDING_LEASE_MS, updatedAt: now },
      eq(reminders.id, id),
      eq(reminders.state, "pending"),
      lte(reminders.nextAttemptAt, now),
    )
    .returning()) as ReminderRow[];
  // Someone else claimed it (another run, another object), or it was cancelled meanwhile: not ours to send.
  if (!claimed) return;
  await reminderQueueChanged(env, scope);
  const fields = { reminderId: claimed.id, channel: claimed.channel, attempt: claimed.attempts };
  let outcome: { externalId: string } | DeliveryError;
  try {
    outcome = await reminderChannels[claimed.channel].send(env, scope, await deliveryOf(scope, claimed));
  } catch (error) {
    // Every channel turns what its outside request threw into a DeliveryError, so anything else was thrown before a
    // request went out (reading the customer, the settings or the tenant's numbers from D1): nothing was sent, and a
    // later attempt may succeed.
    outcome = error instanceof DeliveryError ? error : new DeliveryError("not_sent", "could not prepare the delivery", true);
  }
  const done = Date.now();
  if (!(outcome instanceof DeliveryError)) {
    await settle(env, scope, claimed, { state: "sent", externalId: outcome.externalId, sentAt: done, lastError: null, updatedAt: done });
    metrics.count("reminders_sent_total", { channel: claimed.channel, outcome: "sent" });
    log.info("reminder.sent", fields);
    return;
  }
  const maxAttempts = parseSettings(env).values.REMINDER_MAX_ATTEMPTS;
  if (outcome.retryable && claimed.attempts < maxAttempts) {
    const nextAttemptAt = done + backoffMs(env, claimed.attempts);
    await settle(env, scope, claimed, { state: "pending", nextAttemptAt, lastError: outcome.code, updatedAt: done });
    log.warn("reminder.retry", { ...fields, code: outcome.code });
    return;
  }
  await settle(env, scope, claimed, { state: "failed", lastError: outcome.code, updatedAt: done });
  metrics.count("reminders_sent_total", { channel: claimed.channel, outcome: "failed" });
  log.warn("reminder.failed", { ...fields, code: outcome.code });
}

/**
 * Writes the result of this run's claim (same attempt). A result that comes back after its lease expired still lands
 * over `outcome_unknown`: what happened beats the guess.
 */
async function settle(env: Env, scope: TenantScope, claimed: ReminderRow, set: Partial<ReminderRow>) {
  await scope.update(
    reminders,
    set,
    eq(reminders.id, claimed.id),
    eq(reminders.attempts, claimed.attempts),
    or(eq(reminders.state, "sending"), and(eq(reminders.state, "failed"), eq(reminders.lastError, OUTCOME_UNKNOWN))),
  );
  await reminderQueueChanged(env, scope);
}

async function deliveryOf(scope: TenantScope, row: ReminderRow) {
  const [customer] = (await scope.select(customers, eq(customers.id, row.customerId))) as Array<typeof customers.$inferSelect>;
  if (!customer?.phone) throw new DeliveryError("customer_unreachable", "The customer has no phone number", false);
  const { currency } = await readTenantSettings(scope);
  return {
    reminderId: row.id,
    to: customer.phone,
    customerName: customer.name,
    message: row.message,
    amount: row.amount,
    currency,
    correlationId: `reminder-${row.id}`,
  };
}
