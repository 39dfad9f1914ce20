import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { BusinessEngine } from "../business/engine.ts";
import type { AppEnv } from "../http/context.ts";
import { LEDGER_DIRECTIONS, LEDGER_KINDS, PAYMENT_MODES } from "../shared/db/schema.ts";

/**
 * The business engine's shapes as the REST API documents them (the engine's own types, workers/business/engine.ts).
 * Every amount is an integer in the tenant currency's minor unit (paise, cents): the API takes and answers exactly
 * what is stored, so nothing is rounded on the way in or out.
 */
const minor = (description: string) =>
  z
    .number()
    .int()
    .openapi({ description: `${description}, in the currency's minor unit` });

export const customerSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    nickname: z.string().nullable(),
    phone: z.string().nullable().openapi({ description: "E.164" }),
    email: z.string().nullable(),
    language: z.string().nullable(),
    notes: z.string().nullable(),
    balance: minor("What the customer owes (negative: in credit)"),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Customer");

export const productSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    unitPrice: minor("Price of one unit"),
    sku: z.string().nullable(),
    unit: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Product");

export const invoiceSchema = z
  .object({
    id: z.string(),
    customerId: z.string(),
    status: z.enum(["open", "void"]),
    currency: z.string(),
    total: minor("Sum of the items"),
    notes: z.string().nullable(),
    source: z.string(),
    items: z.array(
      z.object({
        productId: z.string().nullable(),
        description: z.string(),
        quantity: z.number(),
        unit: z.string().nullable(),
        unitPrice: minor("Price of one unit"),
        amount: minor("quantity × unitPrice, rounded half up"),
      }),
    ),
    createdAt: z.string(),
    voidedAt: z.string().nullable(),
    voidReason: z.string().nullable(),
  })
  .openapi("Invoice");

export const ledgerEntrySchema = z
  .object({
    id: z.string(),
    kind: z.enum(LEDGER_KINDS),
    direction: z.enum(LEDGER_DIRECTIONS),
    amount: minor("The movement"),
    balanceAfter: minor("The customer's balance once this entry applied"),
    mode: z.enum(PAYMENT_MODES).nullable(),
    reference: z.string().nullable(),
    invoiceId: z.string().nullable(),
    source: z.string(),
    createdAt: z.string(),
  })
  .openapi("LedgerEntry");

export const idParam = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" } }),
});

/** `Idempotency-Key`: optional; with it a retry of the same body answers the first answer and writes nothing. */
export const idempotencyHeader = z.object({
  "idempotency-key": z
    .string()
    .optional()
    .openapi({
      param: { name: "idempotency-key", in: "header" },
      description: "Same key and body: the first answer, nothing written twice; same key, other body: 422",
    }),
});

/** The engine for this request's tenant, writing as the authenticated principal. */
export function engineFor(c: Context<AppEnv>): BusinessEngine {
  const scope = c.get("scope");
  return new BusinessEngine(scope, scope.tenantId, { source: "api", by: c.get("principal").id }, c.env.CACHE);
}
