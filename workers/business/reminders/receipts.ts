import { eq } from "drizzle-orm";
import { whatsappRemindersSentAs } from "../../shared/db/directory.ts";
import { reminders } from "../../shared/db/schema.ts";
import { tenantScopeFor } from "../../shared/db/tenant-scope.ts";
import type { Logger } from "../../shared/logger.ts";
import { metrics } from "../../shared/observability/metrics.ts";
import { reminderQueueChanged } from "./reminders.ts";

/** A message the platform sent that Meta reports undelivered: its id (`wamid…`) and Meta's error code. */
export interface FailedSend {
  messageId: string;
  code: number | null;
}

/**
 * Meta answers a WhatsApp send with a message id and only later says, in a signed receipt, that it could not deliver
 * it: 131047 when the customer has not written in 24 hours (free-form text is refused outside that window), 131026
 * for a number without WhatsApp. A reminder marked `sent` on the id is marked `failed` with Meta's code, so an
 * operator sees that it never arrived. Answers how many reminders it failed.
 */
export async function failUndeliveredReminders(env: Env, failed: FailedSend[], log: Logger, now = Date.now()): Promise<number> {
  if (failed.length === 0) return 0;
  const codes = new Map(failed.map((send) => [send.messageId, send.code]));
  let changed = 0;
  for (const { tenantId, reminderId, messageId } of await whatsappRemindersSentAs(env, [...codes.keys()])) {
    const code = codes.get(messageId ?? "") ?? null;
    const scope = tenantScopeFor(env, tenantId);
    const updated = await scope
      .update(
        reminders,
        { state: "failed", lastError: code === null ? "whatsapp_undelivered" : `whatsapp_${code}`, updatedAt: now },
        eq(reminders.id, reminderId),
        // Only once, and only over `sent`: a receipt repeated by Meta, or one for a reminder already failed, is a no-op.
        eq(reminders.state, "sent"),
      )
      .returning({ id: reminders.id });
    if (updated.length === 0) continue;
    changed++;
    // It was counted `sent` when Meta took it; a counter cannot take that back, so the failure is counted as well.
    metrics.count("reminders_sent_total", { channel: "whatsapp", outcome: "failed" });
    log.warn("reminder.undelivered", { reminderId, code });
    await reminderQueueChanged(env, scope);
  }
  return changed;
}
