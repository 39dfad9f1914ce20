import { and, eq, lt, type SQL } from "drizzle-orm";
import { sendWhatsAppText } from "../business/whatsapp-client.ts";
import { whatsappMessages } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { errorType } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { requireSettings } from "../shared/settings.ts";
import { readTenantSettings } from "../shared/tenant-settings.ts";
import { recordOutbound } from "./transcript.ts";

/**
 * Messages whose answer was abandoned. A message is recorded `received` before the webhook's 200 and answered after
 * it (`waitUntil`); a Worker that ends in between (a deploy, an eviction, a crash) leaves it `received` with nobody
 * told. The cron finds such messages minutes later and tells each sender once that their message may not have been
 * answered or done. It never answers them again: the conversation has moved on (a late "yes" could confirm a newer
 * draft), and a stored body may be masked.
 */

/** WhatsApp accepts a free-form reply only within 24 hours of the person's message (its customer-service window). */
export const WHATSAPP_REPLY_WINDOW_MS = 24 * 60 * 60_000;

export type AbandonedOutcome = "told" | "unanswered" | "none";

/** Claims `waId`'s messages still `received` from before `cutoff`, tells the sender once, and records what was done. */
export async function tellAbandoned(
  env: Env,
  scope: TenantScope,
  waId: string,
  cutoff: number,
  log: Logger,
  now = Date.now(),
): Promise<AbandonedOutcome> {
  const mine = (...conditions: SQL[]) => and(eq(whatsappMessages.waId, waId), eq(whatsappMessages.direction, "inbound"), ...conditions);
  // The claim: of two crons that found the same messages, only one moves them out of `received`.
  const claimed = await scope
    .update(
      whatsappMessages,
      { status: "recovering" },
      mine(eq(whatsappMessages.status, "received"), lt(whatsappMessages.createdAt, cutoff)),
    )
    .returning({ messageId: whatsappMessages.messageId, createdAt: whatsappMessages.createdAt });
  if (claimed.length === 0) return "none";
  const answerable = claimed.filter((message) => message.createdAt >= now - WHATSAPP_REPLY_WINDOW_MS);
  let outcome: AbandonedOutcome = "unanswered";
  if (answerable.length < claimed.length) {
    const stale = lt(whatsappMessages.createdAt, now - WHATSAPP_REPLY_WINDOW_MS);
    await scope.update(whatsappMessages, { status: "unanswered" }, mine(eq(whatsappMessages.status, "recovering"), stale));
  }
  if (answerable.length > 0) {
    try {
      const { timezone } = await readTenantSettings(scope);
      const body = apology(answerable.length, Math.min(...answerable.map((message) => message.createdAt)), timezone);
      const sent = await sendWhatsAppText(requireSettings(env, "whatsappSend"), waId, body);
      outcome = "told";
      // Nothing masked: the apology holds a time and no one's words.
      await recordOutbound(scope, { messageId: sent, waId, body, customerId: null }, (text) => text);
    } catch (error) {
      log.warn("whatsapp.abandoned_not_told", { errorType: errorType(error) });
    }
  }
  // `abandoned`: the sender was told; `unanswered`: they could not be (the window closed, or the send failed).
  await scope.update(
    whatsappMessages,
    { status: outcome === "told" ? "abandoned" : "unanswered" },
    // By age, not by id (D1 binds at most 100 values): what a run that died here left claimed goes with these.
    mine(eq(whatsappMessages.status, "recovering"), lt(whatsappMessages.createdAt, cutoff)),
  );
  return outcome;
}

function apology(count: number, since: number, timezone: string): string {
  const when = new Intl.DateTimeFormat("en-IN", {
    timeZone: timezone,
    day: "numeric",
    month: "short",
    hour: "numeric",
    minute: "2-digit",
  }).format(since);
  const which = count === 1 ? `your message of ${when}, and what it` : `your ${count} messages since ${when}, and what they`;
  return `Sorry, we may not have answered ${which} asked may not have been done. Please check before sending it again.`;
}
