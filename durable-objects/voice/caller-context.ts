import type { BusinessEngine } from "../../workers/business/engine.ts";
import { spokenMoney } from "./spoken-money.ts";

/**
 * The caller recognised by their number: at call start the agent is told who is calling, what they owe and their
 * open invoices, so it can greet them by name and answer "how much do I owe" without a tool call. Looked up while
 * the provider session is being opened, never on the media path, and bounded: a slow or failing D1 means the call
 * goes on without context.
 */

/** Longer than a D1 read takes; short enough that the provider's dial is not held noticeably behind it. */
export const CALLER_CONTEXT_TIMEOUT_MS = 750;
const OPEN_INVOICES_TOLD = 5;

/** What the agent is told about the caller, or null (unknown number, D1 slow or failing). Never rejects. */
export function callerContext(books: BusinessEngine, phone: string, timeoutMs = CALLER_CONTEXT_TIMEOUT_MS): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), timeoutMs);
  });
  const lookup = describeCaller(books, phone).catch(() => null);
  return Promise.race([lookup, timeout]).finally(() => clearTimeout(timer));
}

async function describeCaller(books: BusinessEngine, phone: string): Promise<string | null> {
  if (!/^\+[1-9]\d{6,14}$/.test(phone)) return null;
  const customer = await books.customerByPhone(phone);
  if (!customer) return null;
  const [{ currency }, invoices] = await Promise.all([books.settings(), books.listInvoices({ customerId: customer.id, limit: 20 })]);
  const open = invoices.items.filter((invoice) => invoice.status === "open").slice(0, OPEN_INVOICES_TOLD);
  const lines = [
    "Caller recognised by their phone number (a customer of the shop):",
    `- name: ${customer.name}`,
    `- customer id: ${customer.id}`,
    `- balance owed: ${spokenMoney(customer.balance, currency)}`,
    open.length === 0
      ? "- open invoices: none"
      : `- open invoices: ${open.map((invoice) => `${spokenMoney(invoice.total, currency)} of ${invoice.createdAt.slice(0, 10)} (id ${invoice.id})`).join("; ")}`,
  ];
  return lines.join("\n");
}
