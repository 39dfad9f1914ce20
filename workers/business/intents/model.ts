import { z } from "zod";
import { metrics } from "../../shared/observability/metrics.ts";
import { type Intent, intentSchema, PAYMENT_MODES, type ReadingContext } from "./intent.ts";
import { dateOf, minorAmount } from "./parser.ts";

/**
 * The text model's reading of a message: OpenAI's Responses API with a strict JSON schema, so the answer is data, not
 * prose. The model returns amounts as written ("1,000") and dates as written or resolved; this module turns them into
 * minor units and local dates with the same code as the offline parser, then checks the result against `intentSchema`.
 * Any failure (network, status, refusal, a shape that does not parse) is `null`: the caller falls back to the parser.
 */
export const INTENT_MODEL = "gpt-4o-mini";
const MODEL_TIMEOUT_MS = 8_000;

export interface ModelSettings {
  OPENAI_API_BASE: string;
  OPENAI_API_KEY: string;
}

export interface ModelContext extends ReadingContext {
  currency: string;
  /** The customer the conversation was last about ("he paid 200" means them), or null. */
  lastCustomer: string | null;
}

const KINDS = [
  "find_customer",
  "create_invoice",
  "record_payment",
  "get_balance",
  "list_invoices",
  "schedule_reminder",
  "unknown",
] as const;
const nullable = (type: string) => ({ type: [type, "null"] });

/** Strict structured output: every property required, absent ones null. */
export const INTENT_JSON_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["intent", "customer", "query", "items", "amount", "mode", "due", "limit"],
  properties: {
    intent: { type: "string", enum: KINDS },
    customer: { ...nullable("string"), description: "the customer's name as written; null for the sender themself ('my balance')" },
    query: { ...nullable("string"), description: "find_customer: what to search for" },
    items: {
      type: "array",
      description: "create_invoice: the items; empty otherwise",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["product", "quantity", "unit"],
        properties: { product: { type: "string" }, quantity: { type: "number" }, unit: nullable("string") },
      },
    },
    amount: { ...nullable("string"), description: "money as written, digits only with an optional decimal point, e.g. 1000 or 12.50" },
    mode: { type: ["string", "null"], enum: [...PAYMENT_MODES, null] },
    due: { ...nullable("string"), description: "schedule_reminder: the due date as YYYY-MM-DD in the shop's calendar" },
    limit: { ...nullable("integer"), description: "list_invoices: how many, default 5" },
  },
} as const;

const modelOutput = z.object({
  intent: z.enum(KINDS),
  customer: z.string().nullable(),
  query: z.string().nullable(),
  items: z.array(z.object({ product: z.string(), quantity: z.number(), unit: z.string().nullable() })),
  amount: z.string().nullable(),
  mode: z.enum(PAYMENT_MODES).nullable(),
  due: z.string().nullable(),
  limit: z.number().int().nullable(),
});

const responseSchema = z.object({
  status: z.string().optional(),
  output: z.array(
    z.looseObject({ type: z.string(), content: z.array(z.looseObject({ type: z.string(), text: z.string().optional() })).optional() }),
  ),
  usage: z.object({ input_tokens: z.number().int().min(0), output_tokens: z.number().int().min(0) }).optional(),
});

export async function modelIntent(settings: ModelSettings, text: string, context: ModelContext): Promise<Intent | null> {
  let response: Response;
  try {
    response = await fetch(`${settings.OPENAI_API_BASE.replace(/\/$/, "")}/v1/responses`, {
      method: "POST",
      headers: { Authorization: `Bearer ${settings.OPENAI_API_KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify({
        model: INTENT_MODEL,
        instructions: instructionsFor(context),
        input: [{ role: "user", content: text }],
        text: { format: { type: "json_schema", name: "shop_intent", strict: true, schema: INTENT_JSON_SCHEMA } },
        store: false,
      }),
      signal: AbortSignal.timeout(MODEL_TIMEOUT_MS),
    });
  } catch {
    return null;
  }
  if (!response.ok) {
    await response.body?.cancel();
    return null;
  }
  const parsed = responseSchema.safeParse(await response.json().catch(() => null));
  if (!parsed.success) return null;
  if (parsed.data.usage) {
    metrics.count("llm_tokens_total", { provider: "openai", kind: "input" }, parsed.data.usage.input_tokens);
    metrics.count("llm_tokens_total", { provider: "openai", kind: "output" }, parsed.data.usage.output_tokens);
  }
  const answer = parsed.data.output.flatMap((item) => item.content ?? []).find((part) => part.type === "output_text")?.text;
  if (!answer) return null;
  try {
    const output = modelOutput.safeParse(JSON.parse(answer));
    return output.success ? toIntent(output.data, context) : null;
  } catch {
    return null;
  }
}

function instructionsFor(context: ModelContext): string {
  const today = new Intl.DateTimeFormat("en-CA", { timeZone: context.timezone, dateStyle: "full" }).format(context.now);
  return [
    "You read one WhatsApp message from a small shop's owner or customer and say what they want, as the JSON schema asks.",
    "Intents: create_invoice (items bought on credit), record_payment (money received, with its mode), schedule_reminder (remind a customer to pay),",
    "get_balance (what a customer owes; customer null when the sender asks about their own), list_invoices, find_customer; unknown for anything else.",
    `Money is in ${context.currency}. Today is ${today} in the shop's time zone (${context.timezone}).`,
    context.lastCustomer ? `The conversation was last about the customer "${context.lastCustomer}" (he, she, them).` : "",
    "Never invent a customer, product or amount that the message does not contain.",
  ]
    .filter(Boolean)
    .join(" ");
}

function toIntent(output: z.infer<typeof modelOutput>, context: ModelContext): Intent | null {
  const amountOf = (written: string | null) => {
    const match = written ? /^\s*(\d[\d,]*)(?:\.(\d+))?\s*$/.exec(written.replace(/[^\d.,]/g, "")) : null;
    return match?.[1] ? minorAmount(match[1], match[2], context.minorDigits) : null;
  };
  const due = output.due && /^\d{4}-\d{2}-\d{2}$/.test(output.due) ? output.due : output.due ? dateOf(output.due, context) : null;
  const candidate = {
    find_customer: { kind: "find_customer", query: output.query ?? output.customer },
    create_invoice: {
      kind: "create_invoice",
      customer: output.customer,
      items: output.items.map((item) => ({ product: item.product, quantityMilli: Math.round(item.quantity * 1000), unit: item.unit })),
    },
    record_payment: { kind: "record_payment", customer: output.customer, amount: amountOf(output.amount), mode: output.mode ?? "other" },
    get_balance: { kind: "get_balance", customer: output.customer },
    list_invoices: { kind: "list_invoices", customer: output.customer, limit: output.limit ?? 5 },
    schedule_reminder: { kind: "schedule_reminder", customer: output.customer, amount: amountOf(output.amount), dueDate: due },
    unknown: { kind: "unknown" },
  }[output.intent];
  const intent = intentSchema.safeParse(candidate);
  return intent.success ? intent.data : null;
}
