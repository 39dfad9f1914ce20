import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { post } from "./business.ts";
import { d1Count, eventually } from "./carriers.ts";
import { postWhatsApp, textDelivery } from "./whatsapp.ts";

/**
 * Fixtures of the privacy tests (export, erasure): a person with books and WhatsApp messages, made through the API
 * and the WhatsApp webhook, and the emails the platform sent (miniflare's send_email output, test/simulators/email).
 */

/** A customer with an invoice, a payment and a reminder, made through the API; WhatsApp messages from their number. */
export async function customerWithBooks(token: string, shopNumber: string, name: string, waId: string, said: string) {
  const customer = await post<{ id: string }>(token, "/api/v1/customers", { name, phone: `+${waId}`, notes: `${name} pays by card` });
  await post(token, "/api/v1/products", { name: `Rice for ${name}`, unitPrice: 6000, unit: "kg" }).catch(() => undefined);
  const invoice = await post<{ id: string }>(token, "/api/v1/invoices", {
    customerId: customer.id,
    items: [{ productName: "Tea", quantity: 2, unitPrice: 2500 }],
  });
  await post(token, "/api/v1/payments", { customerId: customer.id, amount: 1000, mode: "upi", invoiceId: invoice.id });
  await post(token, "/api/v1/reminders", {
    customerId: customer.id,
    dueAt: new Date(Date.now() + 30 * 86_400_000).toISOString(),
    message: `${name}, please pay the rest`,
    channel: "sms",
  });
  expect((await postWhatsApp(textDelivery(shopNumber, waId, said))).status).toBe(200);
  // The inbound is recorded before the 200; its reply follows after it.
  await eventually(
    async () => (await d1Count("SELECT count(*) AS n FROM whatsapp_messages WHERE wa_id = ? AND direction = 'outbound'", waId)) > 0,
  );
  return { customerId: customer.id, invoiceId: invoice.id };
}

/** The raw messages sent to `address` so far, oldest first. */
export async function mailTo(address: string): Promise<string[]> {
  const response = await fetch(`${env.MAILBOX_URL}/messages?to=${encodeURIComponent(address)}`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { messages: string[] }).messages;
}

/** Waits for the `count`-th email to `address` and reads the erasure code out of it. */
export async function erasureCodeMailedTo(address: string, count = 1): Promise<{ code: string; raw: string }> {
  const raw = await eventually(async () => (await mailTo(address))[count - 1], 250);
  const code = /Your confirmation code: (\d{6})/.exec(raw)?.[1];
  expect(code, raw).toBeDefined();
  return { code: code!, raw };
}
