import { type Context, Hono } from "hono";
import { failUndeliveredReminders } from "../business/reminders/receipts.ts";
import type { AppEnv } from "../http/context.ts";
import { readBoundedBytes } from "../shared/bounded-body.ts";
import { constantTimeEqualText } from "../shared/constant-time.ts";
import { routeForNumber } from "../shared/db/directory.ts";
import { tenantScopeFor } from "../shared/db/tenant-scope.ts";
import { parseSettings } from "../shared/settings.ts";
import { readPiiMasker } from "../shared/tenant-settings.ts";
import { respond } from "./conversation.ts";
import { type BusinessNumberMessages, messagesOf, whatsappWebhookSchema } from "./payload.ts";
import { verifyWhatsAppSignature } from "./signature.ts";
import { markInbound, recordInbound } from "./transcript.ts";

/**
 * Meta's WhatsApp Cloud API webhook. GET answers the subscription challenge; POST takes signed deliveries. A
 * delivery is verified over its raw bytes, each message is recorded once per (tenant, message id) before anything
 * acts on it, and the 200 goes back at once: the reading, the business operation and the reply run after it
 * (`waitUntil`), so a slow model never makes Meta retry, and a retry of a recorded message does nothing. A receipt
 * saying a message the platform sent failed fails the reminder it carried.
 */
export const MAX_WHATSAPP_BODY_BYTES = 64 * 1024;
export const whatsappRoutes = new Hono<AppEnv>();

const text = (c: Context<AppEnv>, body: string, status: 200 | 400 | 403 | 413 | 503) =>
  c.body(body, status, { "Content-Type": "text/plain; charset=utf-8" });

whatsappRoutes.get("/webhooks/whatsapp", (c) => {
  const { values, problems } = parseSettings(c.env);
  // A malformed token is as good as none: refuse rather than compare against something unintended.
  if (!values.WHATSAPP_VERIFY_TOKEN || problems.some((p) => p.setting === "WHATSAPP_VERIFY_TOKEN")) {
    return text(c, "WhatsApp is not configured on this platform", 503);
  }
  const mode = c.req.query("hub.mode");
  const token = c.req.query("hub.verify_token") ?? "";
  const challenge = c.req.query("hub.challenge") ?? "";
  if (mode !== "subscribe" || !constantTimeEqualText(token, values.WHATSAPP_VERIFY_TOKEN) || !/^[\w-]{1,128}$/.test(challenge)) {
    c.get("log").warn("security.whatsapp_verification_refused", { mode });
    return text(c, "Forbidden", 403);
  }
  return text(c, challenge, 200);
});

whatsappRoutes.post("/webhooks/whatsapp", async (c) => {
  const log = c.get("log");
  const { values, problems } = parseSettings(c.env);
  const secret = values.WHATSAPP_APP_SECRET;
  if (!secret || problems.some((p) => p.setting === "WHATSAPP_APP_SECRET"))
    return text(c, "WhatsApp is not configured on this platform", 503);
  const raw = await readBoundedBytes(c.req.raw, MAX_WHATSAPP_BODY_BYTES);
  if (raw === null) {
    log.warn("security.whatsapp_rejected", { reason: "body too large" });
    return text(c, "Payload Too Large", 413);
  }
  if (!(await verifyWhatsAppSignature(secret, raw, c.req.header("x-hub-signature-256")))) {
    log.warn("security.whatsapp_rejected", { reason: "bad or missing signature", ip: c.get("clientIp") });
    return text(c, "Forbidden", 403);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    return text(c, "Bad Request", 400);
  }
  const payload = whatsappWebhookSchema.safeParse(json);
  // Meta's, but not a shape this platform acts on (another product's field): acknowledged so it is not retried.
  if (!payload.success) {
    log.warn("whatsapp.unreadable_payload", { issues: payload.error.issues.length });
    return text(c, "OK", 200);
  }
  const groups = messagesOf(payload.data);
  const work: Promise<void>[] = [];
  for (const group of groups) work.push(...(await accept(c, group)));
  if (work.length > 0) c.executionCtx.waitUntil(Promise.allSettled(work).then(() => undefined));
  // Before the 200: if D1 cannot take a failed send's receipt, Meta delivers it again (messages are recorded once).
  for (const group of groups) await failUndeliveredReminders(c.env, group.failedSends, log);
  return text(c, "OK", 200);
});

/** Records each new message of one business number and returns the replies to run after the 200. */
async function accept(c: Context<AppEnv>, group: BusinessNumberMessages): Promise<Promise<void>[]> {
  const log = c.get("log");
  if (group.messages.length === 0) return [];
  const route = await routeForNumber(c.env, group.businessNumber);
  if (!route) {
    // Never the text: only that a number nobody owns received messages.
    log.warn("whatsapp.unknown_number", { messages: group.messages.length });
    return [];
  }
  const scope = tenantScopeFor(c.env, route.tenantId);
  const work: Promise<void>[] = [];
  // Once per delivery: what is stored of each message (and its reply) follows the tenant's piiRedaction.
  const mask = await readPiiMasker(scope);
  for (const message of group.messages) {
    if (!(await recordInbound(scope, message, mask))) {
      log.info("whatsapp.duplicate_delivery", { tenantId: route.tenantId });
      continue;
    }
    // A sender's burst past WHATSAPP_SENDER_LIMITER is recorded but not answered: each answer can cost a model call.
    const { success } = await c.env.WHATSAPP_SENDER_LIMITER.limit({ key: `${route.tenantId}:${message.from}` });
    if (!success) {
      log.warn("whatsapp.sender_rate_limited", { tenantId: route.tenantId });
      await markInbound(scope, message.id, "rate_limited", null, null);
      continue;
    }
    work.push(respond(c.env, scope, message, log, mask));
  }
  return work;
}
