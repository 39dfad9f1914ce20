import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BusinessEngine } from "../../../workers/business/engine.ts";
import { database } from "../../../workers/shared/db/client.ts";
import { phoneNumbers } from "../../../workers/shared/db/schema.ts";
import { verifyWhatsAppSignature } from "../../../workers/whatsapp/signature.ts";
import { TEST_WHATSAPP_VERIFY_TOKEN } from "../../support/test-settings.ts";
import { d1Count, eventually } from "../support/carriers.ts";
import { createTenant } from "../support/identity.ts";
import {
  businessNumber,
  delivery,
  postWhatsApp,
  randomMessageId,
  randomWaId,
  replyNumber,
  sentTo,
  textDelivery,
  verifyWhatsApp,
  whatsappSignature,
} from "../support/whatsapp.ts";

// protocols.md section 8: the self-made vector (secret, exact body, expected header).
const VECTOR_SECRET = "whatsapp-app-secret-0123456789";
const VECTOR_BODY =
  '{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Asha Rao"},"wa_id":"919876543210"}],"messages":[{"from":"919876543210","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=","timestamp":"1733148000","text":{"body":"What is my balance?"},"type":"text"}]},"field":"messages"}]}]}';
const VECTOR_SIGNATURE = "sha256=70a5a4e9e387ad5f78a403437c43d866dc2bb88cd990b2ac919c029912fd34d2";

const inboundCount = (messageId: string) => d1Count("SELECT count(*) AS n FROM whatsapp_messages WHERE message_id = ?", messageId);

describe("WhatsApp webhook: subscription challenge", () => {
  it("answers the challenge as plain text when the verify token matches", async () => {
    const response = await verifyWhatsApp({
      "hub.mode": "subscribe",
      "hub.verify_token": TEST_WHATSAPP_VERIFY_TOKEN,
      "hub.challenge": "1158201444",
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toContain("text/plain");
    expect(await response.text()).toBe("1158201444");
  });

  it("refuses a wrong token, a token that is a prefix, and a mode other than subscribe", async () => {
    const refused: Array<Record<string, string>> = [
      { "hub.mode": "subscribe", "hub.verify_token": "wrong-token-entirely", "hub.challenge": "1" },
      { "hub.mode": "subscribe", "hub.verify_token": TEST_WHATSAPP_VERIFY_TOKEN.slice(0, -1), "hub.challenge": "1" },
      { "hub.mode": "unsubscribe", "hub.verify_token": TEST_WHATSAPP_VERIFY_TOKEN, "hub.challenge": "1" },
      { "hub.verify_token": TEST_WHATSAPP_VERIFY_TOKEN, "hub.challenge": "1" },
    ];
    for (const query of refused) {
      const response = await verifyWhatsApp(query);
      expect(response.status).toBe(403);
      expect(await response.text()).not.toContain("1");
    }
  });
});

describe("WhatsApp webhook: signatures", () => {
  it("computes protocols.md's vector over the raw bytes", async () => {
    const body = new TextEncoder().encode(VECTOR_BODY);
    expect(await verifyWhatsAppSignature(VECTOR_SECRET, body, VECTOR_SIGNATURE)).toBe(true);
    expect(await verifyWhatsAppSignature(VECTOR_SECRET, body, VECTOR_SIGNATURE.toUpperCase().replace("SHA256", "sha256"))).toBe(true);
    // The same JSON re-serialised with a space differs in its bytes, so it is not Meta's.
    const reserialised = new TextEncoder().encode(VECTOR_BODY.replace('"object":', '"object": '));
    expect(await verifyWhatsAppSignature(VECTOR_SECRET, reserialised, VECTOR_SIGNATURE)).toBe(false);
    expect(await verifyWhatsAppSignature("another-secret-0123456789", body, VECTOR_SIGNATURE)).toBe(false);
  });

  it("accepts the vector's delivery through the Worker and records its message once", async () => {
    const tenantId = await createTenant("Vector shop");
    await database(env.DB)
      .insert(phoneNumbers)
      .values({ id: crypto.randomUUID(), tenantId, e164: "+15550783881", carrier: "twilio", createdAt: Date.now() });
    const response = await postWhatsApp(VECTOR_BODY, { signature: VECTOR_SIGNATURE });
    expect(response.status).toBe(200);
    expect(await inboundCount("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=")).toBe(1);
    // The sender is nobody the shop knows: told so, and nothing else.
    expect(await replyNumber("919876543210", 1)).toMatch(/not registered/);
  });

  it("refuses a missing, malformed or wrong signature with 403 and stores nothing", async () => {
    const tenantId = await createTenant("Unsigned shop");
    const number = await businessNumber(tenantId);
    const waId = randomWaId();
    const messageId = randomMessageId();
    const body = textDelivery(number, waId, "What is my balance?", messageId);
    const valid = await whatsappSignature(body);
    const flipped = `${valid.slice(0, -1)}${valid.endsWith("0") ? "1" : "0"}`;
    for (const signature of [
      null,
      "",
      "sha256=",
      "sha1=abc",
      valid.slice(7),
      flipped,
      await whatsappSignature(body, "some-other-app-secret-000"),
    ]) {
      const response = await postWhatsApp(body, { signature });
      expect(response.status).toBe(403);
    }
    // Signed, but the body altered after signing.
    expect((await postWhatsApp(body.replace("balance", "balanse"), { signature: valid })).status).toBe(403);
    expect(await inboundCount(messageId)).toBe(0);
    expect(await sentTo(waId)).toEqual([]);
  });

  it("refuses a body larger than a webhook can be before verifying it", async () => {
    const tenantId = await createTenant("Big shop");
    const number = await businessNumber(tenantId);
    const body = textDelivery(number, randomWaId(), "x".repeat(70 * 1024));
    expect((await postWhatsApp(body)).status).toBe(413);
  });
});

describe("WhatsApp webhook: deliveries", () => {
  it("acts once on a message Meta delivers twice", async () => {
    const tenantId = await createTenant("Retry shop");
    const number = await businessNumber(tenantId);
    const waId = randomWaId();
    await new BusinessEngine(env.DB, tenantId, { source: "api" }, env.CACHE).createCustomer({ name: "Asha", phone: `+${waId}` });
    const messageId = randomMessageId();
    const body = textDelivery(number, waId, "What is my balance?", messageId);
    expect((await postWhatsApp(body)).status).toBe(200);
    expect((await postWhatsApp(body)).status).toBe(200);
    expect(await replyNumber(waId, 1)).toBe("Your balance is ₹0.00.");
    // A later message's answer arrives after any answer to the redelivery would have: there is none.
    expect((await postWhatsApp(textDelivery(number, waId, "Show my invoices"))).status).toBe(200);
    await eventually(async () => (await sentTo(waId)).some((message) => message.body === "No invoices yet."), 400);
    expect((await sentTo(waId)).map((message) => message.body)).toEqual(["Your balance is ₹0.00.", "No invoices yet."]);
    expect(await inboundCount(messageId)).toBe(1);
  });

  it("acknowledges receipts without acting, and answers a non-text message politely", async () => {
    const tenantId = await createTenant("Receipt shop");
    const number = await businessNumber(tenantId);
    const waId = randomWaId();
    const receipt = JSON.parse(delivery(number, { from: waId, id: randomMessageId(), type: "text", text: { body: "x" } })) as {
      entry: Array<{ changes: Array<{ value: Record<string, unknown> }> }>;
    };
    const value = receipt.entry[0]!.changes[0]!.value;
    delete value.messages;
    value.statuses = [{ id: randomMessageId(), status: "delivered", timestamp: "1733148000", recipient_id: waId }];
    expect((await postWhatsApp(JSON.stringify(receipt))).status).toBe(200);
    expect((await postWhatsApp(delivery(number, { from: waId, id: randomMessageId(), type: "image", image: { id: "1" } }))).status).toBe(
      200,
    );
    expect(await replyNumber(waId, 1)).toMatch(/only read text/);
    expect(await sentTo(waId)).toHaveLength(1);
  });

  it("answers a sender at most 20 times a minute; the rest are recorded, not answered", async () => {
    const tenantId = await createTenant("Chatty shop");
    const number = await businessNumber(tenantId);
    const waId = randomWaId();
    for (let i = 0; i < 22; i++) expect((await postWhatsApp(textDelivery(number, waId, `hello ${i}`))).status).toBe(200);
    const statuses = () =>
      env.DB.prepare("SELECT status, count(*) AS n FROM whatsapp_messages WHERE wa_id = ? AND direction = 'inbound' GROUP BY status")
        .bind(waId)
        .all<{ status: string; n: number }>();
    expect((await statuses()).results.find((row) => row.status === "rate_limited")?.n).toBe(2);
    await replyNumber(waId, 20);
    expect(await d1Count("SELECT count(*) AS n FROM whatsapp_messages WHERE wa_id = ? AND direction = 'inbound'", waId)).toBe(22);
  });

  it("ignores messages to a number no tenant owns, storing nothing", async () => {
    const waId = randomWaId();
    const messageId = randomMessageId();
    expect((await postWhatsApp(textDelivery("15559990000", waId, "What is my balance?", messageId))).status).toBe(200);
    expect(await inboundCount(messageId)).toBe(0);
  });
});
