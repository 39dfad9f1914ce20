import { z } from "zod";
import { PAYMENT_MODES } from "../../shared/vocabulary.ts";

export { PAYMENT_MODES };

/**
 * What a shopkeeper's text message asks for, whichever reader understood it (the text model or the offline parser).
 * Customers are named as the person wrote them (`null` = the sender themself, "my balance"); the business engine
 * resolves the name, never this layer. Money is an integer in the tenant currency's minor unit; quantities are in
 * thousandths (the invoice items' `quantity_milli`); dates are the tenant's local calendar dates.
 */
export const paymentModeSchema = z.enum(PAYMENT_MODES);

const customerRef = z.string().trim().min(1).max(120).nullable();
const localDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "a YYYY-MM-DD date");

export const intentItemSchema = z.object({
  product: z.string().trim().min(1).max(120),
  quantityMilli: z.number().int().positive().max(1_000_000_000),
  unit: z.string().max(20).nullable(),
});

export const intentSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("find_customer"), query: z.string().trim().min(1).max(120) }),
  z.object({ kind: z.literal("create_invoice"), customer: customerRef, items: z.array(intentItemSchema).min(1).max(50) }),
  z.object({
    kind: z.literal("record_payment"),
    customer: customerRef,
    amount: z.number().int().positive(),
    mode: paymentModeSchema,
  }),
  z.object({ kind: z.literal("get_balance"), customer: customerRef }),
  z.object({ kind: z.literal("list_invoices"), customer: customerRef, limit: z.number().int().min(1).max(20) }),
  z.object({
    kind: z.literal("schedule_reminder"),
    customer: customerRef,
    amount: z.number().int().positive().nullable(),
    dueDate: localDate,
  }),
  z.object({ kind: z.literal("unknown") }),
]);

export type Intent = z.infer<typeof intentSchema>;
export type IntentItem = z.infer<typeof intentItemSchema>;
export type IntentKind = Intent["kind"];

/** What reading a message needs to know about the shop: its money's minor digits and its calendar. */
export interface ReadingContext {
  /** Digits of the currency's minor unit (2 for INR). */
  minorDigits: number;
  timezone: string;
  /** Milliseconds since the epoch: "tomorrow" is relative to it. */
  now: number;
}
