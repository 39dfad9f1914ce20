import { z } from "zod";
import {
  type BusinessEngine,
  type Invoice,
  type InvoiceInput,
  invoiceAsShown,
  type LedgerEntry,
  type PaymentInput,
} from "../../workers/business/engine.ts";
import { BusinessError } from "../../workers/business/errors.ts";
import { runOnce, type WriteMark } from "../../workers/business/idempotency.ts";
import { parseAmount } from "../../workers/business/money.ts";
import { type ReminderInput, type ReminderView, scheduleReminder, writtenReminder } from "../../workers/business/reminders/reminders.ts";
import { PAYMENT_MODES, REMINDER_CHANNELS } from "../../workers/shared/db/schema.ts";
import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import { AppError } from "../../workers/shared/errors.ts";
import type { Draft, DraftStore } from "./drafts.ts";
import { spokenMoney } from "./spoken-money.ts";
import { type Tool, type ToolHost, tool } from "./tools.ts";

/**
 * The shop's tools for the voice agent, over the call's tenant's `BusinessEngine` (acting as `voice`). Reads answer
 * at once; `create_invoice`, `record_payment` and `schedule_reminder` (it sends a message) only leave a draft (drafts.ts) — priced, the customer resolved —
 * that the agent reads back, and `confirm_action` writes it once the caller said yes. Every answer is JSON whose
 * `message` is a sentence the agent can say; a name that fits several customers comes back as a question, never a
 * guess. Nothing here throws into the provider.
 */

/**
 * The call's tenant's books: the engine acting as the voice agent, the bindings search and reminders need, and the
 * call's drafts (kept in its own storage).
 */
export interface Books {
  engine: BusinessEngine;
  env: Env;
  drafts: DraftStore;
}

const objectSchema = (properties: Record<string, unknown>, required: string[]) => ({
  type: "object",
  properties,
  required,
  additionalProperties: false,
});

const customerArg = z.string().trim().min(1).max(200);
const customerProperty = { type: "string", description: "The customer's name as the caller said it, or their id" };
/** Amounts as the model gives them, in major units; parsed exactly (never as a float) by the engine's parseAmount. */
const amountArg = z.union([z.number(), z.string().max(40)]);

const findArgs = z.object({ query: customerArg });
const balanceArgs = z.object({ customer: customerArg });
const listArgs = z.object({ customer: customerArg, limit: z.number().int().min(1).max(10).optional() });
const invoiceArgs = z.object({
  customer: customerArg,
  items: z
    .array(z.object({ product: z.string().trim().min(1).max(120), quantity: z.number(), unitPrice: amountArg.optional() }))
    .min(1)
    .max(50),
  notes: z.string().max(500).optional(),
});
const paymentArgs = z.object({
  customer: customerArg,
  amount: amountArg,
  mode: z.enum(PAYMENT_MODES),
  invoiceId: z.string().min(1).max(64).optional(),
  reference: z.string().trim().max(120).optional(),
});
const reminderArgs = z.object({
  customer: customerArg,
  dueAt: z.iso.datetime({ offset: true }),
  message: z.string().trim().min(1).max(480),
  amount: amountArg.optional(),
  channel: z.enum(REMINDER_CHANNELS).default("sms"),
});
const confirmArgs = z.object({ draftId: z.string().trim().min(1).max(20) });

const READ_BACK = "Read this back to the caller and ask them to confirm. Nothing is saved until you call confirm_action.";
const IN_THE_PAST = "That time has already passed; ask the caller for a later one.";
/** Reminders scheduled by the agent are stamped as the voice channel's. */
const VOICE = { source: "voice" } as const;
/** The idempotency scope of confirmed drafts in D1. */
const DRAFT_SCOPE = "voice_draft";
/** A search's best match is taken as the customer meant only this far ahead of the next one; else the agent asks. */
const CLEAR_LEAD = 0.2;

/**
 * The business tools, made once per isolate rather than per call: their definitions are the same for every call, and
 * each call's share of the live heap is what every major GC marks (test/bench/FINDINGS.md, item 30). A tool reaches its
 * call's books and drafts through the host it is run with.
 */
export const BUSINESS_TOOLS: ReadonlyArray<Tool<z.ZodType>> = [
  tool({
    definition: {
      name: "find_customer",
      description: "Find a customer of the shop by name (even misheard), nickname or phone number.",
      parameters: objectSchema({ query: { type: "string", description: "Name, nickname or phone number" } }, ["query"]),
    },
    args: findArgs,
    execute: (args, host) =>
      withBooks(host, async ({ engine }) => {
        const matches = await engine.searchCustomers(args.query);
        const [best, next] = matches;
        if (!best) return refusal(`No customer matches "${args.query}"; ask the caller to spell the name.`);
        if (next && best.score - next.score < CLEAR_LEAD) return refusal(whichOne(matches.map((match) => match.customer.name)));
        const { currency } = await engine.settings();
        const { id, name, balance } = best.customer;
        return answer(`${name} owes ${spokenMoney(balance, currency)}.`, { customer: { id, name, balance, currency } });
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
      withBooks(host, async ({ engine }) => {
        const customer = await engine.resolveCustomer(args.customer);
        const { currency } = await engine.settings();
        return answer(`${customer.name} owes ${spokenMoney(customer.balance, currency)}.`, {
          customerId: customer.id,
          balance: customer.balance,
          currency,
        });
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
      withBooks(host, async ({ engine }) => {
        const customer = await engine.resolveCustomer(args.customer);
        const { currency } = await engine.settings();
        const { items } = await engine.listInvoices({ customerId: customer.id, limit: args.limit ?? 5 });
        if (items.length === 0) return answer(`${customer.name} has no invoices.`, { invoices: [] });
        const said = items.map(
          (invoice) => `${spokenMoney(invoice.total, currency)} on ${invoice.createdAt.slice(0, 10)} (${invoice.status})`,
        );
        return answer(`${customer.name}'s latest invoices: ${said.join("; ")}.`, {
          invoices: items.map(({ id, total, status, createdAt }) => ({ id, total, status, createdAt })),
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
                quantity: { type: "number", description: "How many (up to three decimals, e.g. 1.5 kg)" },
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
      withBooks(host, async ({ engine, drafts }) => {
        const customer = await engine.resolveCustomer(args.customer);
        const { currency } = await engine.settings();
        const request: InvoiceInput = {
          customerId: customer.id,
          items: args.items.map((item) => ({
            productName: item.product,
            quantity: item.quantity,
            ...(item.unitPrice === undefined ? {} : { unitPrice: parseAmount(item.unitPrice, currency) }),
          })),
          ...(args.notes ? { notes: args.notes } : {}),
        };
        const priced = await engine.priceInvoice(request);
        const lines = priced.items.map((item) => `${item.quantity} ${item.description} at ${spokenMoney(item.unitPrice, currency)}`);
        const summary = `Invoice for ${priced.customerName}: ${lines.join(", ")}. Total ${spokenMoney(priced.total, currency)}.`;
        // Written as read back: a price changed before the caller's yes changes nothing.
        return draftAnswer(drafts, { kind: "invoice", request: invoiceAsShown(priced, args.notes) }, summary);
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
      withBooks(host, async ({ engine, drafts }) => {
        const customer = await engine.resolveCustomer(args.customer);
        const { currency } = await engine.settings();
        const request: PaymentInput = {
          customerId: customer.id,
          amount: parseAmount(args.amount, currency),
          mode: args.mode,
          currency,
          ...(args.invoiceId ? { invoiceId: args.invoiceId } : {}),
          ...(args.reference ? { reference: args.reference } : {}),
        };
        const summary = `Payment of ${spokenMoney(request.amount, currency)} by ${args.mode} from ${customer.name}.`;
        return draftAnswer(drafts, { kind: "payment", request }, summary);
      }),
  }),
  tool({
    definition: {
      name: "schedule_reminder",
      description: `Prepare a reminder to send a customer later (by SMS unless asked otherwise), returned as a draft. ${READ_BACK}`,
      parameters: objectSchema(
        {
          customer: customerProperty,
          dueAt: { type: "string", format: "date-time", description: "When to send it: ISO 8601 with its offset" },
          message: { type: "string", description: "What the reminder says (at most 480 characters)" },
          amount: { type: "number", description: "Amount due in the shop's currency, if any" },
          channel: { type: "string", enum: [...REMINDER_CHANNELS] },
        },
        ["customer", "dueAt", "message"],
      ),
    },
    args: reminderArgs,
    execute: (args, host) =>
      withBooks(host, async ({ engine, drafts }) => {
        const customer = await engine.resolveCustomer(args.customer);
        const { currency, timezone } = await engine.settings();
        // Refused here already, so the agent does not read back a reminder that could never be saved.
        if (Date.parse(args.dueAt) <= Date.now()) return refusal(IN_THE_PAST);
        const request: ReminderInput = {
          customerId: customer.id,
          dueAt: args.dueAt,
          message: args.message,
          channel: args.channel,
          ...(args.amount === undefined ? {} : { amount: parseAmount(args.amount, currency) }),
        };
        const when = new Intl.DateTimeFormat("en", { dateStyle: "full", timeStyle: "short", timeZone: timezone }).format(
          Date.parse(args.dueAt),
        );
        const due = request.amount === undefined ? "" : `, amount due ${spokenMoney(request.amount, currency)}`;
        const summary = `A ${args.channel} reminder to ${customer.name} on ${when}: "${args.message}"${due}.`;
        return draftAnswer(drafts, { kind: "reminder", request }, summary);
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
    execute: (args, host) => withBooks(host, (books) => confirm(books, args.draftId)),
  }),
];

/**
 * Writes a draft once. The draft is claimed in the call's storage first (a second confirmation gets the first one's
 * answer), and the write itself runs once per draft in D1 too (`runOnce`, keyed by the draft's own key): an object
 * that died between writing and recording it is answered from what it wrote instead of writing again.
 */
async function confirm(books: Books, draftId: string): Promise<string> {
  const { drafts } = books;
  const claim = drafts.claim(draftId);
  if (claim.kind === "done") return claim.result;
  if (claim.kind === "in_progress") return refusal("That draft is being saved right now.");
  if (claim.kind === "unknown")
    return refusal(`There is no draft ${draftId.slice(0, 20)} on this call; prepare it again and read it back.`);
  if (claim.kind === "expired") return refusal("That draft has expired; prepare it again and read it back.");
  const { draft } = claim;
  try {
    const { body } = await runOnce(
      tenantScopeFor(books.env, books.engine.tenantId),
      books.engine.tenantId,
      DRAFT_SCOPE,
      draft.key,
      draft.request,
      {
        write: async (mark) => ({ status: 200, body: await write(books, draft, mark) }),
        answer: async (ref) => ({ status: 200, body: await writtenAnswer(books, draft, ref) }),
      },
    );
    drafts.done(draft.id, body);
    return body;
  } catch (error) {
    drafts.release(draft.id);
    if (error instanceof BusinessError && error.code === "idempotency_in_progress") return refusal("That draft is being saved right now.");
    throw error;
  }
}

/** Writes the draft, `mark` (the D1 key's proof of the write) in the same batch, and answers what was saved. */
async function write({ engine, env }: Books, draft: Draft, mark: WriteMark): Promise<string> {
  const request = draft.request;
  if (request.kind === "invoice") return invoiceSaved(engine, await engine.createInvoice(request.request, mark));
  if (request.kind === "reminder")
    return reminderSaved(await scheduleReminder(env, tenantScopeFor(env, engine.tenantId), VOICE, request.request, mark));
  return paymentSaved(engine, await engine.recordPayment(request.request, mark));
}

/** The answer to a draft written by an object that died before answering for it: from what it wrote (`ref`). */
async function writtenAnswer({ engine, env }: Books, draft: Draft, ref: string): Promise<string> {
  const request = draft.request;
  if (request.kind === "invoice") return invoiceSaved(engine, await engine.writtenInvoice(ref));
  if (request.kind === "reminder") return reminderSaved(await writtenReminder(env, tenantScopeFor(env, engine.tenantId), ref));
  return paymentSaved(engine, await engine.writtenPayment(ref));
}

async function invoiceSaved(engine: BusinessEngine, invoice: Invoice): Promise<string> {
  const { currency } = await engine.settings();
  return answer(`Saved: invoice for ${spokenMoney(invoice.total, currency)}.`, { invoiceId: invoice.id, total: invoice.total });
}

function reminderSaved(reminder: ReminderView): string {
  return answer("Saved: the reminder will be sent then.", { reminderId: reminder.id, dueAt: reminder.dueAt });
}

async function paymentSaved(engine: BusinessEngine, payment: LedgerEntry): Promise<string> {
  const { currency } = await engine.settings();
  return answer(
    `Saved: payment of ${spokenMoney(payment.amount, currency)}. The balance is now ${spokenMoney(payment.balanceAfter, currency)}.`,
    { paymentId: payment.id, balance: payment.balanceAfter },
  );
}

function draftAnswer(drafts: DraftStore, request: Draft["request"], summary: string): string {
  const draftId = drafts.create(request);
  if (!draftId) return refusal("Too many drafts on this call; confirm or drop the ones you have first.");
  return answer(summary, { draftId, next: READ_BACK });
}

/** Runs a tool against the books; a business refusal becomes a sentence for the agent to say or ask. */
async function withBooks(host: ToolHost, run: (books: Books) => Promise<string>): Promise<string> {
  const books = host.business();
  if (!books) return refusal("The shop's books are not available on this call.");
  try {
    return await run(books);
  } catch (error) {
    // The engine's refusals (BusinessError) and the reminders' (AppError) are the caller's to fix: said, not failed.
    if (error instanceof AppError && error.status < 500) return refusal(sentenceFor(error));
    // D1 unreachable and the like: the call is failed in the tool log, and the agent gets a sentence, not internals.
    throw new Error("The shop's books could not be reached just now; try again in a moment.");
  }
}

function sentenceFor(error: AppError): string {
  if (error.code === "reminder_in_past") return IN_THE_PAST;
  const names = error instanceof BusinessError ? (error.candidates ?? []).map((candidate) => candidate.name) : [];
  if (names.length > 1) return whichOne(names);
  if (names.length === 1) return `${error.message}. Did you mean ${names[0]}?`;
  return `${error.message}.`;
}

/** "I found Rahul Sharma and Rahul Verma — which one?" */
function whichOne(names: string[]): string {
  const listed = names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : (names[0] ?? "");
  return `I found ${listed} — which one?`;
}

const answer = (message: string, detail: Record<string, unknown>) => JSON.stringify({ ok: true, message, ...detail });
const refusal = (message: string) => JSON.stringify({ ok: false, message });
