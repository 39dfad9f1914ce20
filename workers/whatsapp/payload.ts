import { z } from "zod";

/**
 * The part of Meta's webhook payload this platform acts on. Everything else (contacts' profiles, errors, pricing)
 * is allowed through unread; receipts (`statuses`) are acknowledged and ignored.
 */
const message = z.looseObject({
  from: z.string().regex(/^\d{6,15}$/),
  id: z.string().min(1).max(200),
  timestamp: z.string().optional(),
  type: z.string(),
  text: z.object({ body: z.string().max(4096) }).optional(),
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
}

/** The messages of a verified payload grouped by the business number they were sent to; malformed changes skipped. */
export function messagesOf(payload: z.infer<typeof whatsappWebhookSchema>): BusinessNumberMessages[] {
  return payload.entry.flatMap((entry) =>
    entry.changes.flatMap((change) => {
      if (change.field !== "messages") return [];
      const parsed = value.safeParse(change.value);
      if (!parsed.success || !parsed.data.messages?.length) return [];
      const digits = parsed.data.metadata.display_phone_number.replace(/\D/g, "");
      return [{ businessNumber: `+${digits}`, messages: parsed.data.messages }];
    }),
  );
}
