import { z } from "zod";
import type { BusinessEngine } from "../../workers/business/engine.ts";
import { BusinessError } from "../../workers/business/errors.ts";
import { PAYMENT_MODES, REMINDER_CHANNELS } from "../../workers/shared/db/schema.ts";
import type { DraftKind, DraftStore } from "./drafts.ts";
import { spokenMoney, toMinor } from "./spoken-money.ts";
import { type Tool, type ToolHost, tool } from "./tools.ts";

/**
 * The shop's tools for the voice agent, over the tenant's `BusinessEngine` (acting as `voice`). Reads answer at
 * once; `create_invoice`, `record_payment` and `schedule_reminder` only leave a draft (drafts.ts) — priced, the
 * customer resolved — that the agent reads back, and `confirm_action` writes it once the caller said yes. Every
 * answer is JSON whose `message` is a sentence the agent can say; a name that fits several customers comes back as
 * a question, never a guess. Nothing here throws into the provider.
 */

const customerArg = z.string().trim().min(1).max(200);
const customerProperty = { type: "string", description: "The customer's name as the caller said it, or their id" };

const findArgs = z.object({ query: customerArg });
const balanceArgs = z.object({ customer: customerArg });
const listArgs = z.object({ customer: customerArg, limit: z.number().int().min(1).max(10).optional() });
const invoiceArgs = z.object({
  customer: customerArg,
  items: z
    .array(
      z.object({
        product: z.string().trim().min(1).max(200),
        quantity: z.number().positive().max(1_000_000),
        unitPrice: z.number().positive().max(1e12).optional(),
      }),
    )
    .min(1)
    .max(50),
  notes: z.string().max(500).optional(),
});
const paymentArgs = z.object({
  customer: customerArg,
  amount: z.number().positive().max(1e12),
  mode: z.enum(PAYMENT_MODES),
  invoiceId: z.string().max(100).optional(),
  reference: z.string().max(200).optional(),
});
const reminderArgs = z.object({
  customer: customerArg,
  dueAt: z.iso.datetime({ offset: true }),
  message: z.string().trim().min(1).max(500),
  amount: z.number().positive().max(1e12).optional(),
  channel: z.enum(REMINDER_CHANNELS).default("sms"),
});
const confirmArgs = z.object({ draftId: z.string().trim().min(1).max(20) });

const READ_BACK = "Read this back to the caller and ask them to confirm. Nothing is saved until you call confirm_action.";

/** The business tools, their drafts kept in the call's storage. */
export function businessTools(drafts: DraftStore): Array<Tool<z.ZodType>> {
  return [
    tool({
      definition: {
        name: "find_customer",
        description: "Find a customer of the shop by name, nickname or phone number.",
        parameters: objectSchema({ query: { type: "string", description: "Name, nickname or phone number" } }, ["query"]),
      },
      args: findArgs,
      execute: (args, host) =>
        withBooks(host, async (books) => {
          const customer = await books.resolveCustomer(args.query);
          const { currency } = await books.settings();
          return answer(`${customer.name} owes ${spokenMoney(customer.balance, currency)}.`, {
            customer: { id: customer.id, name: customer.name, balance: customer.balance, currency },
          });
        }),
    }),
    tool({
      definition: {
        name: "get_balance",
        description: "What a customer owes the shop now.",
        parameters: objectSchema({ customer: customerProperty }, ["customer"]),
      },
      args: balanceArgs,
      execute: (args, host) =>
        withBooks(host, async (books) => {
          const customer = await books.resolveCustomer(args.customer);
          const { currency } = await books.settings();
          const balance = await books.balance(customer.id);
          return answer(`${customer.name} owes ${spokenMoney(balance, currency)}.`, { customerId: customer.id, balance, currency });
        }),
    }),
    tool({
      definition: {
        name: "list_invoices",
        description: "A customer's latest invoices, newest first.",
        parameters: objectSchema(
          { customer: customerProperty, limit: { type: "integer", minimum: 1, maximum: 10, description: "How many (default 5)" } },
          ["customer"],
        ),
      },
      args: listArgs,
      execute: (args, host) =>
        withBooks(host, async (books) => {
          const customer = await books.resolveCustomer(args.customer);
          const { currency } = await books.settings();
          const invoices = await books.listInvoices({ customerId: customer.id, limit: args.limit ?? 5 });
          if (invoices.length === 0) return answer(`${customer.name} has no invoices.`, { invoices: [] });
          const lines = invoices.map((invoice) => `${spokenMoney(invoice.total, currency)} (${invoice.status})`);
          return answer(`${customer.name}'s latest invoices: ${lines.join(", ")}.`, {
            invoices: invoices.map((invoice) => ({ id: invoice.id, total: invoice.total, status: invoice.status, createdAt: invoice.createdAt })),
          });
        }),
    }),
    tool({
      definition: {
        name: "create_invoice",
        description: `Prepare an invoice for a customer: it is priced and returned as a draft. ${READ_BACK}`,
        parameters: objectSchema(
          {
            customer: customerProperty,
            items: {
              type: "array",
              minItems: 1,
              items: objectSchema(
                {
                  product: { type: "string", description: "Product name as the caller said it" },
                  quantity: { type: "number", description: "How many (decimals allowed, e.g. 1.5 kg)" },
                  unitPrice: { type: "number", description: "Price per unit in the shop's currency, only if the caller named one" },
                },
                ["product", "quantity"],
              ),
            },
            notes: { type: "string" },
          },
          ["customer", "items"],
        ),
      },
      args: invoiceArgs,
      execute: (args, host) =>
        withBooks(host, async (books) => {
          const customer = await books.resolveCustomer(args.customer);
          const { currency } = await books.settings();
          const request = {
            customerId: customer.id,
            items: args.items.map((item) => ({
              productName: item.product,
              quantity: item.quantity,
              ...(item.unitPrice === undefined ? {} : { unitPrice: toMinor(item.unitPrice, currency) }),
            })),
            ...(args.notes ? { notes: args.notes } : {}),
          };
          const priced = await books.priceInvoice(request);
          const lines = priced.items.map((item) => `${item.quantity} ${item.name} at ${spokenMoney(item.unitPrice, currency)}`);
          const summary = `Invoice for ${customer.name}: ${lines.join(", ")}. Total ${spokenMoney(priced.total, currency)}.`;
          return draftAnswer(drafts, "invoice", request, summary);
        }),
    }),
    tool({
      definition: {
        name: "record_payment",
        description: `Prepare a payment received from a customer, returned as a draft. ${READ_BACK}`,
        parameters: objectSchema(
          {
            customer: customerProperty,
            amount: { type: "number", description: "Amount paid in the shop's currency, as said (e.g. 450.50)" },
            mode: { type: "string", enum: [...PAYMENT_MODES] },
            invoiceId: { type: "string", description: "The invoice it pays, if the caller said" },
            reference: { type: "string", description: "Transaction reference, if any" },
          },
          ["customer", "amount", "mode"],
        ),
      },
      args: paymentArgs,
      execute: (args, host) =>
        withBooks(host, async (books) => {
          const customer = await books.resolveCustomer(args.customer);
          const { currency } = await books.settings();
          const amount = toMinor(args.amount, currency);
          const request = { customerId: customer.id, amount, mode: args.mode, invoiceId: args.invoiceId, reference: args.reference };
          const summary = `Payment of ${spokenMoney(amount, currency)} by ${args.mode} from ${customer.name}.`;
          return draftAnswer(drafts, "payment", request, summary);
        }),
    }),
    tool({
      definition: {
        name: "schedule_reminder",
        description: `Prepare a payment reminder to send a customer later, returned as a draft. ${READ_BACK}`,
        parameters: objectSchema(
          {
            customer: customerProperty,
            dueAt: { type: "string", format: "date-time", description: "When to send it, ISO 8601 with offset" },
            message: { type: "string", description: "What the reminder says" },
            amount: { type: "number", description: "Amount due in the shop's currency, if any" },
            channel: { type: "string", enum: [...REMINDER_CHANNELS], description: "Default sms" },
          },
          ["customer", "dueAt", "message"],
        ),
      },
      args: reminderArgs,
      execute: (args, host) =>
        withBooks(host, async (books) => {
          const customer = await books.resolveCustomer(args.customer);
          const { currency, timezone } = await books.settings();
          const dueAt = Date.parse(args.dueAt);
          if (dueAt <= Date.now()) return refusal("That time has already passed; ask the caller for a later one.");
          const amount = args.amount === undefined ? undefined : toMinor(args.amount, currency);
          const request = { customerId: customer.id, dueAt: new Date(dueAt).toISOString(), message: args.message, amount, channel: args.channel };
          const when = new Intl.DateTimeFormat("en", { dateStyle: "full", timeStyle: "short", timeZone: timezone }).format(dueAt);
          const summary = `A ${args.channel} reminder to ${customer.name} on ${when}: "${args.message}".`;
          return draftAnswer(drafts, "reminder", request, summary);
        }),
    }),
    tool({
      definition: {
        name: "confirm_action",
        description:
          "Save a draft from create_invoice, record_payment or schedule_reminder. Call only after the caller said yes to the draft you read back.",
        parameters: objectSchema({ draftId: { type: "string", description: "The draftId the draft came with" } }, ["draftId"]),
      },
      args: confirmArgs,
      execute: (args, host) => withBooks(host, (books) => confirm(drafts, books, args.draftId)),
    }),
  ];
}

async function confirm(drafts: DraftStore, books: BusinessEngine, draftId: string): Promise<string> {
  const claim = drafts.claim(draftId);
  if (claim.kind === "done") return claim.result;
  if (claim.kind === "in_progress") return refusal("That draft is being saved right now.");
  if (claim.kind === "unknown") return refusal(`There is no draft ${draftId.slice(0, 20)} on this call; prepare it again.`);
  if (claim.kind === "expired") return refusal("That draft has expired; prepare it again and read it back.");
  const { draft } = claim;
  try {
    const result = await write(books, draft.kind, draft.request);
    drafts.done(draft.id, result);
    return result;
  } catch (error) {
    drafts.release(draft.id);
    throw error;
  }
}

/** Writes a confirmed draft: exactly the request that was read back. */
async function write(books: BusinessEngine, kind: DraftKind, request: string): Promise<string> {
  const { currency } = await books.settings();
  switch (kind) {
    case "invoice": {
      const invoice = await books.createInvoice(JSON.parse(request));
      return answer(`Saved: invoice for ${spokenMoney(invoice.total, currency)}.`, { invoiceId: invoice.id, total: invoice.total });
    }
    case "payment": {
      const payment = await books.recordPayment(JSON.parse(request));
      return answer(`Saved: payment of ${spokenMoney(payment.amount, currency)}.`, { paymentId: payment.id });
    }
    case "reminder": {
      const reminder = await books.scheduleReminder(JSON.parse(request));
      return answer("Saved: the reminder will be sent then.", { reminderId: reminder.id });
    }
  }
}

function draftAnswer(drafts: DraftStore, kind: DraftKind, request: unknown, summary: string): string {
  const draftId = drafts.create(kind, request);
  if (!draftId) return refusal("Too many drafts on this call; save or drop the ones you have first.");
  return answer(summary, { draftId, next: READ_BACK });
}

/** Runs a tool against the books; a business refusal becomes a sentence for the agent to say or ask. */
async function withBooks(host: ToolHost, run: (books: BusinessEngine) => Promise<string>): Promise<string> {
  const books = host.business();
  if (!books) return refusal("The shop's books are not available on this call.");
  try {
    return await run(books);
  } catch (error) {
    if (error instanceof BusinessError) return refusal(sentenceFor(error));
    // D1 unreachable and the like: the call is failed in the tool log, and the agent gets a sentence, not internals.
    throw new Error("The shop's books could not be reached just now; try again in a moment.");
  }
}

function sentenceFor(error: BusinessError): string {
  const names = (error.candidates ?? []).map((candidate) => candidate.name);
  if (names.length > 1) return `I found ${names.slice(0, -1).join(", ")} and ${names.at(-1)} — which one?`;
  if (names.length === 1) return `Did you mean ${names[0]}?`;
  return error.message;
}

const answer = (message: string, detail: Record<string, unknown>) => JSON.stringify({ ok: true, message, ...detail });
const refusal = (message: string) => JSON.stringify({ ok: false, message });

const objectSchema = (properties: Record<string, unknown>, required: string[]) => ({
  type: "object",
  properties,
  required,
  additionalProperties: false,
});
