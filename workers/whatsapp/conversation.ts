import { z } from "zod";
import {
  BusinessEngine,
  type Customer,
  type Invoice,
  type InvoiceInput,
  invoiceAsShown,
  invoiceInput,
  type LedgerEntry,
  type PaymentInput,
  paymentInput,
} from "../business/engine.ts";
import { BusinessError } from "../business/errors.ts";
import { runOnce, type WriteMark } from "../business/idempotency.ts";
import type { Intent } from "../business/intents/intent.ts";
import { readIntent } from "../business/intents/read.ts";
import { scheduleReminder } from "../business/reminders/reminders.ts";
import { sendWhatsAppText, WhatsAppSendError } from "../business/whatsapp-client.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { AppError, errorType } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { parseSettings, requireSettings } from "../shared/settings.ts";
import { currencyMinorDigits, readTenantSettings } from "../shared/tenant-settings.ts";
import type { InboundMessage } from "./payload.ts";
import { markInbound, recordOutbound } from "./transcript.ts";

/**
 * One message's answer: who is writing (one of the shop's operators, a known customer, or nobody the shop knows),
 * what they want (readIntent), the business engine's operation, and a short reply. Anything that moves money is
 * first priced and shown, and written only when the same sender answers "yes" within 10 minutes, once: the write runs
 * under the draft's id as an idempotency key (`runOnce`), so two "yes" messages (or Meta retrying one) write once.
 */
const STATE_SECONDS = 600;
const YES = /^(?:yes|y|yes please|ok|okay|confirm|confirmed|haan|ha|ji)$/i;
const NO = /^(?:no|n|cancel|stop|nahi)$/i;
const TEXT_ONLY = 'Sorry, I can only read text messages. Please type what you need, e.g. "What is my balance?"';
const UNKNOWN_SENDER = "Sorry, this number is not registered with the shop. Please ask the shop to add you.";
const OPERATORS_ONLY = 'Only the shop can do that here. You can ask "What is my balance?" or "Show my invoices".';
const HELP =
  'Sorry, I did not understand. Try: "Create an invoice for Rahul: 2 kg rice", "Priya paid 500 by UPI", "What\'s Suresh\'s balance?" or "Show recent invoices".';

/** A draft: exactly what was shown (product ids, unit prices, currency), and when, so "yes" writes that and no other. */
const pendingSchema = z.discriminatedUnion("kind", [
  z.object({ id: z.uuid(), kind: z.literal("create_invoice"), input: invoiceInput, shownAt: z.number().int() }),
  z.object({ id: z.uuid(), kind: z.literal("record_payment"), input: paymentInput, shownAt: z.number().int() }),
]);
type Pending = z.infer<typeof pendingSchema>;

const stateSchema = z.object({
  /** The customer the conversation was last about: "he paid 200" means them, and the intent cache keys on it. */
  lastCustomer: z.string().max(120).nullable(),
  pending: pendingSchema.nullable(),
});
type ConversationState = z.infer<typeof stateSchema>;

interface Sender {
  role: "operator" | "customer" | "stranger";
  customer: Customer | null;
}

interface Turn {
  reply: string;
  intent: Intent | null;
  customerId: string | null;
}

/** Reads, acts and replies; never throws (a failure is logged and the sender told that nothing changed). */
export async function respond(
  env: Env,
  scope: TenantScope,
  message: InboundMessage,
  log: Logger,
  mask: (text: string) => string,
): Promise<void> {
  let turn: Turn;
  try {
    turn =
      message.type === "text" && message.text?.body.trim()
        ? await converse(env, scope, message.from, message.text.body, sentAtOf(message))
        : { reply: TEXT_ONLY, intent: null, customerId: null };
  } catch (error) {
    // Only the error's kind: a failed query's message carries its parameters (the person's words, amounts).
    log.error("whatsapp.turn_failed", { errorType: errorType(error) });
    turn = { reply: "Sorry, something went wrong and nothing was changed. Please try again.", intent: null, customerId: null };
  }
  let status = "answered";
  try {
    const sent = await sendWhatsAppText(requireSettings(env, "whatsappSend"), message.from, turn.reply);
    await recordOutbound(scope, { messageId: sent, waId: message.from, body: turn.reply, customerId: turn.customerId }, mask);
  } catch (error) {
    status = "unanswered";
    log.warn("whatsapp.reply_failed", { reason: error instanceof WhatsAppSendError ? error.message : errorType(error) });
  }
  await markInbound(scope, message.id, status, turn.intent, turn.customerId).catch((error: unknown) =>
    log.warn("whatsapp.mark_failed", { errorType: errorType(error) }),
  );
}

/** When the person sent the message, by Meta's clock (`timestamp`, seconds); null when Meta did not say. */
function sentAtOf(message: InboundMessage): number | null {
  return message.timestamp && /^\d{1,12}$/.test(message.timestamp) ? Number(message.timestamp) * 1000 : null;
}

/**
 * How far Meta's clock and ours may disagree. A "yes" sent more than this before its draft was shown was answering an
 * earlier one: delivered late (Meta retried it, or delivered out of order), it must not confirm the newer draft.
 */
const CLOCK_SKEW_MS = 2_000;

async function converse(env: Env, scope: TenantScope, waId: string, text: string, sentAt: number | null): Promise<Turn> {
  const engine = new BusinessEngine(scope, scope.tenantId, { source: "whatsapp", by: `wa:${waId}` }, env.CACHE);
  const shop = await readTenantSettings(scope);
  const sender = await identify(engine, shop.whatsappOperators, waId);
  if (sender.role === "stranger") return { reply: UNKNOWN_SENDER, intent: null, customerId: null };
  const stateKey = conversationStateKey(scope.tenantId, waId);
  const state = await loadState(env.CACHE, stateKey);
  const money = moneyFormat(shop.currency);

  // Only operators get drafts; one who stopped being one since is not asked to confirm it either.
  if (state.pending && sender.role === "operator" && (YES.test(text.trim()) || NO.test(text.trim()))) {
    const pending = state.pending;
    // Without Meta's time the message cannot be placed after the draft: asked again rather than guessed.
    if (sentAt === null || sentAt < pending.shownAt - CLOCK_SKEW_MS)
      return {
        reply: "That reply was sent before this draft was shown, so nothing was written. Reply YES to confirm it.",
        intent: null,
        customerId: null,
      };
    await saveState(env.CACHE, stateKey, { ...state, pending: null });
    if (NO.test(text.trim())) return { reply: "Cancelled. Nothing was written.", intent: null, customerId: null };
    return confirm(engine, scope, pending, money);
  }

  const settings = parseSettings(env).values;
  const reading = await readIntent(env, settings, scope.tenantId, text, {
    minorDigits: currencyMinorDigits(shop.currency),
    timezone: shop.timezone,
    now: Date.now(),
    currency: shop.currency,
    lastCustomer: state.lastCustomer,
  });
  const intent = reading.intent;
  try {
    const outcome = await act({ env, scope, waId, timezone: shop.timezone, currency: shop.currency, engine, sender, money }, intent);
    await saveState(env.CACHE, stateKey, {
      lastCustomer: outcome.customer?.name ?? state.lastCustomer,
      pending: outcome.pending ?? null,
    });
    return { reply: outcome.reply, intent, customerId: outcome.customer?.id ?? null };
  } catch (error) {
    if (error instanceof AppError) return { reply: sentenceFor(error), intent, customerId: null };
    throw error;
  }
}

/** A reminder for a day goes out at 10:00 that day in the shop's zone (a decent hour to ask for money). */
const REMINDER_HOUR = 10;
function dueAtOf(localDate: string, timezone: string): number {
  const [year, month, day] = localDate.split("-").map(Number) as [number, number, number];
  const guess = Date.UTC(year, month - 1, day, REMINDER_HOUR);
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
    })
      .formatToParts(guess)
      .map((part) => [part.type, Number(part.value)]),
  );
  const shown = Date.UTC(parts.year ?? year, (parts.month ?? month) - 1, parts.day ?? day, parts.hour ?? 0, parts.minute ?? 0);
  return guess - (shown - guess);
}

async function identify(engine: BusinessEngine, operators: readonly string[], waId: string): Promise<Sender> {
  const phone = `+${waId}`;
  const customer = await engine.customerByPhone(phone);
  if (operators.includes(phone)) return { role: "operator", customer };
  return { role: customer ? "customer" : "stranger", customer };
}

interface Outcome {
  reply: string;
  customer?: Customer;
  pending?: Pending;
}

interface TurnContext {
  env: Env;
  scope: TenantScope;
  waId: string;
  timezone: string;
  currency: string;
  engine: BusinessEngine;
  sender: Sender;
  money: (minor: number) => string;
}

async function act({ env, scope, waId, timezone, currency, engine, sender, money }: TurnContext, intent: Intent): Promise<Outcome> {
  if (intent.kind === "unknown") return { reply: HELP };
  const self = intent.kind === "find_customer" ? false : intent.customer === null;
  // A customer may read their own account and nothing else; "my balance" from an operator is theirs too, if they buy.
  if (sender.role !== "operator" && !(self && (intent.kind === "get_balance" || intent.kind === "list_invoices")))
    return { reply: OPERATORS_ONLY };
  const customerOf = async (name: string | null): Promise<Customer> => {
    if (name !== null) return engine.resolveCustomer(name);
    if (sender.customer) return sender.customer;
    throw new BusinessError("customer_not_found", 404, "Which customer? Please say their name");
  };

  switch (intent.kind) {
    case "find_customer": {
      const customer = await engine.resolveCustomer(intent.query);
      const phone = customer.phone ? `, ${customer.phone}` : "";
      return { reply: `${customer.name}${phone}. Balance ${money(customer.balance)}.`, customer };
    }
    case "get_balance": {
      const customer = await customerOf(intent.customer);
      const whose = intent.customer === null ? "Your balance" : `${customer.name}'s balance`;
      return { reply: `${whose} is ${money(customer.balance)}.`, customer };
    }
    case "list_invoices": {
      const customer = intent.customer === null && sender.role === "operator" ? null : await customerOf(intent.customer);
      const page = await engine.listInvoices({ ...(customer ? { customerId: customer.id } : {}), limit: intent.limit });
      if (page.items.length === 0) return { reply: "No invoices yet.", ...(customer ? { customer } : {}) };
      const lines = page.items.map(
        (invoice) =>
          `${invoiceLabel(invoice.id)} ${money(invoice.total)}${invoice.status === "void" ? " (void)" : ""}, ${invoice.createdAt.slice(0, 10)}`,
      );
      return { reply: `Recent invoices:\n${lines.join("\n")}`, ...(customer ? { customer } : {}) };
    }
    case "create_invoice": {
      const customer = await customerOf(intent.customer);
      const input: InvoiceInput = {
        customerId: customer.id,
        items: intent.items.map((item) => ({ productName: item.product, quantity: item.quantityMilli / 1000 })),
      };
      const draft = await engine.priceInvoice(input);
      const lines = draft.items.map(
        (line) => `${line.quantity}${line.unit ? ` ${line.unit}` : " ×"} ${line.description} ${money(line.amount)}`,
      );
      return {
        reply: `Invoice for ${customer.name}: ${lines.join(", ")}. Total ${money(draft.total)}. Reply YES to create it.`,
        customer,
        pending: { id: crypto.randomUUID(), kind: "create_invoice", input: invoiceAsShown(draft), shownAt: Date.now() },
      };
    }
    case "record_payment": {
      const customer = await customerOf(intent.customer);
      // In the currency shown: a shop that changed its currency before the "yes" gets a refusal, not a conversion.
      const input: PaymentInput = { customerId: customer.id, amount: intent.amount, mode: intent.mode, currency };
      return {
        reply: `Record ${money(intent.amount)} from ${customer.name} by ${intent.mode.toUpperCase()}? Reply YES to record it.`,
        customer,
        pending: { id: crypto.randomUUID(), kind: "record_payment", input, shownAt: Date.now() },
      };
    }
    case "schedule_reminder": {
      const customer = await customerOf(intent.customer);
      const due = dueAtOf(intent.dueDate, timezone);
      const amount = intent.amount ?? (customer.balance > 0 ? customer.balance : null);
      const message =
        amount === null ? `Hello ${customer.name}, a reminder from the shop.` : `Hello ${customer.name}, a reminder from the shop to pay.`;
      // Not money: scheduled at once (cancellable through the API), delivered by WhatsApp to the customer's number.
      await scheduleReminder(
        env,
        scope,
        { source: "whatsapp", by: `wa:${waId}` },
        {
          customerId: customer.id,
          dueAt: new Date(due).toISOString(),
          message,
          channel: "whatsapp",
          ...(amount === null ? {} : { amount }),
        },
      );
      const when = new Intl.DateTimeFormat("en-IN", {
        timeZone: timezone,
        weekday: "short",
        day: "numeric",
        month: "short",
        hour: "numeric",
        minute: "2-digit",
      }).format(due);
      return { reply: `Reminder set for ${customer.name} on ${when}${amount === null ? "" : ` for ${money(amount)}`}.`, customer };
    }
  }
}

/**
 * The confirmed write, at most once per draft however many times "yes" arrives (`runOnce`, keyed by the draft's id):
 * a later "yes" is told it was done, one while the write runs that it is being done.
 */
async function confirm(engine: BusinessEngine, scope: TenantScope, pending: Pending, money: (minor: number) => string): Promise<Turn> {
  const customerId = pending.input.customerId;
  // The reply names the customer and their balance: it is sent, not stored with the key (the key keeps only whose).
  const sent: { turn?: Turn } = {};
  const stored = (turn: Turn) => {
    sent.turn = turn;
    return { status: 201, body: { customerId: turn.customerId } };
  };
  try {
    const { replayed } = await runOnce(scope, scope.tenantId, "whatsapp_confirm", pending.id, pending, {
      write: async (mark) => stored(await confirmedReply(engine, pending, money, mark)),
      answer: async (ref) => stored(await writtenReply(engine, pending, money, ref)),
    });
    if (replayed || !sent.turn) return { reply: "That was already done.", intent: null, customerId };
    return sent.turn;
  } catch (error) {
    if (error instanceof BusinessError && error.code === "idempotency_in_progress")
      return { reply: "That is being done right now.", intent: null, customerId };
    if (error instanceof AppError) return { reply: sentenceFor(error), intent: null, customerId: null };
    throw error;
  }
}

function confirmedReply(engine: BusinessEngine, pending: Pending, money: (minor: number) => string, mark: WriteMark): Promise<Turn> {
  if (pending.kind === "create_invoice")
    return engine.createInvoice(pending.input, mark).then((invoice) => invoiceReply(engine, invoice, money));
  return engine.recordPayment(pending.input, mark).then((entry) => paymentReply(engine, pending.input.customerId, entry, money));
}

/** The reply to a confirmation whose write committed but whose Worker died before answering (`ref`: what it wrote). */
function writtenReply(engine: BusinessEngine, pending: Pending, money: (minor: number) => string, ref: string): Promise<Turn> {
  if (pending.kind === "create_invoice") return engine.writtenInvoice(ref).then((invoice) => invoiceReply(engine, invoice, money));
  return engine.writtenPayment(ref).then((entry) => paymentReply(engine, pending.input.customerId, entry, money));
}

async function invoiceReply(engine: BusinessEngine, invoice: Invoice, money: (minor: number) => string): Promise<Turn> {
  const customer = await engine.getCustomer(invoice.customerId);
  return {
    reply: `Invoice ${invoiceLabel(invoice.id)} for ${customer.name}: ${money(invoice.total)}. Balance ${money(customer.balance)}.`,
    intent: null,
    customerId: customer.id,
  };
}

async function paymentReply(
  engine: BusinessEngine,
  customerId: string,
  entry: LedgerEntry,
  money: (minor: number) => string,
): Promise<Turn> {
  const customer = await engine.getCustomer(customerId);
  return {
    reply: `Recorded ${money(entry.amount)} from ${customer.name}. Balance ${money(entry.balanceAfter)}.`,
    intent: null,
    customerId: customer.id,
  };
}

/** The engine's refusal as a sentence; candidates are offered, never chosen. */
function sentenceFor(error: AppError): string {
  const names = error instanceof BusinessError ? (error.candidates?.map((candidate) => candidate.name) ?? []) : [];
  if (names.length > 0) return `${error.message.replace(/\.$/, "")}. Did you mean: ${names.join(", ")}?`;
  return `${error.message.replace(/\.$/, "")}. Nothing was written.`;
}

const invoiceLabel = (id: string) => `INV-${id.replace(/-/g, "").slice(0, 8).toUpperCase()}`;

function moneyFormat(currency: string): (minor: number) => string {
  const format = new Intl.NumberFormat("en-IN", { style: "currency", currency });
  const divisor = 10 ** currencyMinorDigits(currency);
  return (minor) => format.format(minor / divisor);
}

/** Where a WhatsApp sender's conversation state lives in KV (an erasure deletes it with the person's messages). */
export const conversationStateKey = (tenantId: string, waId: string) => `whatsapp:conversation:${tenantId}:${waId}`;

async function loadState(kv: KVNamespace, key: string): Promise<ConversationState> {
  // Unreadable or unreachable state starts the conversation afresh (a pending draft is then simply not confirmed).
  const stored = stateSchema.safeParse(await kv.get(key, "json").catch(() => null));
  return stored.success ? stored.data : { lastCustomer: null, pending: null };
}

async function saveState(kv: KVNamespace, key: string, state: ConversationState): Promise<void> {
  await kv.put(key, JSON.stringify(state), { expirationTtl: STATE_SECONDS });
}
