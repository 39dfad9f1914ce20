import { and, eq } from "drizzle-orm";
import type { Intent } from "../business/intents/intent.ts";
import { whatsappMessages } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import type { InboundMessage } from "./payload.ts";

/**
 * The conversation's record in `whatsapp_messages`. Inserting an inbound message is also its de-duplication: the
 * unique (tenant, message id) index lets exactly one delivery of a message insert, and only that one acts. Bodies are
 * stored through the tenant's PII masker (`piiRedaction`); the conversation itself reads the message as sent.
 */
export async function recordInbound(scope: TenantScope, message: InboundMessage, mask: (text: string) => string): Promise<boolean> {
  const inserted = await scope
    .insert(whatsappMessages, {
      id: crypto.randomUUID(),
      messageId: message.id,
      direction: "inbound",
      waId: message.from,
      body: message.type === "text" ? mask(message.text?.body ?? "") : `[${message.type.slice(0, 20)}]`,
      status: "received",
      createdAt: Date.now(),
    })
    .onConflictDoNothing()
    .returning({ id: whatsappMessages.id });
  return inserted.length > 0;
}

export async function markInbound(scope: TenantScope, messageId: string, status: string, intent: Intent | null, customerId: string | null) {
  await scope.update(
    whatsappMessages,
    { status, ...(intent ? { intent: intent as Record<string, unknown> } : {}), ...(customerId ? { customerId } : {}) },
    and(eq(whatsappMessages.messageId, messageId), eq(whatsappMessages.direction, "inbound")),
  );
}

export async function recordOutbound(
  scope: TenantScope,
  sent: { messageId: string; waId: string; body: string; customerId: string | null },
  mask: (text: string) => string,
) {
  const { messageId, waId, body, customerId } = sent;
  await scope.insert(whatsappMessages, {
    id: crypto.randomUUID(),
    messageId,
    direction: "outbound",
    waId,
    customerId,
    body: mask(body),
    status: "sent",
    createdAt: Date.now(),
  });
}
