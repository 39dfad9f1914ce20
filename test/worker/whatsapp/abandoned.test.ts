import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../../workers/index.ts";
import { WHATSAPP_ABANDONED_AFTER_MS } from "../../../workers/scheduled.ts";
import { tenantScopeFor } from "../../../workers/shared/db/tenant-scope.ts";
import { TENANT_SETTINGS_DEFAULTS, writeTenantSettingsChange } from "../../../workers/shared/tenant-settings.ts";
import { recordInbound } from "../../../workers/whatsapp/transcript.ts";
import { createTenant } from "../support/identity.ts";
import { businessNumber, postWhatsApp, randomMessageId, randomWaId, replyNumber, sentTo, textDelivery } from "../support/whatsapp.ts";

/**
 * A WhatsApp message is recorded before the webhook's 200 and answered after it (`waitUntil`). A Worker that ends in
 * between leaves it `received`: these tests leave messages so with the webhook's own first step (`recordInbound`)
 * and no answer, age them, and run the real cron. The sender must be told, once, and nothing answered twice.
 */
const MINUTE = 60_000;

async function shop() {
  const tenantId = await createTenant("Kirana");
  const number = await businessNumber(tenantId);
  const owner = randomWaId();
  const scope = tenantScopeFor(env, tenantId);
  await writeTenantSettingsChange(scope, ["whatsappOperators"], { ...TENANT_SETTINGS_DEFAULTS, whatsappOperators: [`+${owner}`] });
  /** What a Worker that died right after recording the message leaves behind, `ageMs` ago. */
  const abandoned = async (waId: string, text: string, ageMs: number) => {
    const id = randomMessageId();
    expect(await recordInbound(scope, { id, from: waId, type: "text", text: { body: text } }, (body) => body)).toBe(true);
    await env.DB.prepare("UPDATE whatsapp_messages SET created_at = ? WHERE tenant_id = ? AND message_id = ?")
      .bind(Date.now() - ageMs, tenantId, id)
      .run();
    return id;
  };
  const statusOf = async (messageId: string) =>
    (
      await env.DB.prepare("SELECT status FROM whatsapp_messages WHERE tenant_id = ? AND message_id = ?")
        .bind(tenantId, messageId)
        .first<{ status: string }>()
    )?.status;
  return { tenantId, number, owner, abandoned, statusOf };
}

async function runCron() {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "*/5 * * * *" }), env, ctx);
  await waitOnExecutionContext(ctx);
}

const shownAt = (at: number) =>
  new Intl.DateTimeFormat("en-IN", {
    timeZone: TENANT_SETTINGS_DEFAULTS.timezone,
    day: "numeric",
    month: "short",
    hour: "numeric",
    minute: "2-digit",
  }).format(at);

describe("WhatsApp messages whose answer was abandoned", () => {
  it("tells the sender once, from the cron, and leaves answered and young messages alone", async () => {
    const { tenantId, number, owner, abandoned, statusOf } = await shop();
    // An answered message first: the cron must not touch it.
    const answeredId = randomMessageId();
    expect((await postWhatsApp(textDelivery(number, owner, "Show recent invoices", answeredId))).status).toBe(200);
    expect(await replyNumber(owner, 1)).toBe("No invoices yet.");

    const older = await abandoned(owner, "Priya paid 500 by UPI", 9 * MINUTE);
    const newer = await abandoned(owner, "yes", WHATSAPP_ABANDONED_AFTER_MS + MINUTE);
    // Young: its answer may still be running.
    const young = await abandoned(owner, "Show recent invoices", WHATSAPP_ABANDONED_AFTER_MS - MINUTE);
    // Past WhatsApp's 24-hour window: a free-form message would be refused, so the sender cannot be told.
    const stranger = randomWaId();
    const stale = await abandoned(stranger, "hello", 25 * 60 * MINUTE);

    await runCron();

    const sent = await sentTo(owner);
    expect(sent).toHaveLength(2);
    const olderAt = await env.DB.prepare("SELECT created_at AS at FROM whatsapp_messages WHERE tenant_id = ? AND message_id = ?")
      .bind(tenantId, older)
      .first<number>("at");
    expect(sent[1]!.body).toBe(
      `Sorry, we may not have answered your 2 messages since ${shownAt(olderAt!)}, and what they asked may not have been done. Please check before sending it again.`,
    );
    expect(await statusOf(older)).toBe("abandoned");
    expect(await statusOf(newer)).toBe("abandoned");
    expect(await statusOf(young)).toBe("received");
    expect(await statusOf(answeredId)).toBe("answered");
    expect(await sentTo(stranger)).toEqual([]);
    expect(await statusOf(stale)).toBe("unanswered");
    // The apology is part of the conversation's record, like any reply.
    const outbound = await env.DB.prepare(
      "SELECT body FROM whatsapp_messages WHERE tenant_id = ? AND wa_id = ? AND direction = 'outbound' ORDER BY created_at",
    )
      .bind(tenantId, owner)
      .all<{ body: string }>();
    expect(outbound.results.map((row) => row.body)).toEqual(sent.map((message) => message.body));

    // The next run finds nothing new to own up to.
    await runCron();
    expect(await sentTo(owner)).toHaveLength(2);
    expect(await statusOf(young)).toBe("received");
  });

  it("says so once when two crons find the same message", async () => {
    const { owner, abandoned, statusOf } = await shop();
    const id = await abandoned(owner, "Create an invoice for Rahul: 2 kg rice", WHATSAPP_ABANDONED_AFTER_MS + MINUTE);
    await Promise.all([runCron(), runCron()]);
    const sent = await sentTo(owner);
    expect(sent.map((message) => message.body)).toEqual([expect.stringMatching(/^Sorry, we may not have answered your message of /)]);
    expect(await statusOf(id)).toBe("abandoned");
  });
});
