import { z } from "zod";
import type { FailedSend } from "../business/reminders/receipts.ts";

/**
 * The part of Meta's webhook payload this platform acts on. Everything else (contacts' profiles, errors, pricing)
 * is allowed through unread; of the receipts (`statuses`) only those saying a send failed are read.
 */
const message = z.looseObject({
  from: z.string().regex(/^\d{6,15}$/),
  id: z.string().min(1).max(200),
  timestamp: z.string().optional(),
  type: z.string(),
  text: z.object({ body: z.string().max(4096) }).optional(),
});

/** Receipts read per change (Meta sends a few; a flood is cut, never refused): within D1's 100 bound values a query. */
const MAX_RECEIPTS = 50;

/** A delivery receipt saying a message the platform sent did not go out (Meta accepted it, then could not deliver it). */
const failedReceipt = z.looseObject({
  id: z.string().min(1).max(200),
  status: z.literal("failed"),
  errors: z.array(z.looseObject({ code: z.number().int() })).optional(),
});

const value = z.looseObject({
  messaging_product: z.literal("whatsapp"),
  metadata: z.looseObject({ display_phone_number: z.string().min(4).max(20), phone_number_id: z.string().min(1) }),
  messages: z.array(message).max(100).optional(),
  statuses: z.array(z.unknown()).optional(),
});

export const whatsappWebhookSchema = z.looseObject({
  object: z.literal("whatsapp_business_account"),
  entry: z
    .array(z.looseObject({ id: z.string(), changes: z.array(z.looseObject({ field: z.string(), value: z.unknown() })).max(100) }))
    .max(100),
});

export type InboundMessage = z.infer<typeof message>;

export interface BusinessNumberMessages {
  /** The shop's WhatsApp number as E.164 (`+` and digits). */
  businessNumber: string;
  messages: InboundMessage[];
  failedSends: FailedSend[];
}

/** What a verified payload brings, grouped by the business number it concerns; malformed changes and receipts skipped. */
export function messagesOf(payload: z.infer<typeof whatsappWebhookSchema>): BusinessNumberMessages[] {
  return payload.entry.flatMap((entry) =>
    entry.changes.flatMap((change) => {
      if (change.field !== "messages") return [];
      const parsed = value.safeParse(change.value);
      if (!parsed.success) return [];
      const messages = parsed.data.messages ?? [];
      // Receipts that say sent, delivered or read change nothing here; one that says failed does.
      const failedSends = (parsed.data.statuses ?? []).slice(0, MAX_RECEIPTS).flatMap((receipt) => {
        const failed = failedReceipt.safeParse(receipt);
        return failed.success ? [{ messageId: failed.data.id, code: failed.data.errors?.[0]?.code ?? null }] : [];
      });
      if (messages.length === 0 && failedSends.length === 0) return [];
      const digits = parsed.data.metadata.display_phone_number.replace(/\D/g, "");
      return [{ businessNumber: `+${digits}`, messages, failedSends }];
    }),
  );
}
