import { env, exports } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { get } from "../support/business.ts";
import { tenantWithNumbers, twilioStatus } from "../support/calls.ts";
import { eventually, randomE164 } from "../support/carriers.ts";
import { api, userWithToken } from "../support/identity.ts";
import { customerWithBooks } from "../support/privacy.ts";
import { forgetProviderHealth } from "../support/provider-health.ts";
import { spokenCall } from "../support/spoken-call.ts";
import { businessNumber, postWhatsApp, randomWaId, textDelivery } from "../support/whatsapp.ts";

/**
 * `POST /api/v1/privacy/export` through the real Worker: a shop whose customer Priya called in (a real call through
 * the call object and the simulated provider, so her session, transcript and call events are the platform's own),
 * has an invoice, a payment, a reminder and WhatsApp messages; another customer of the same shop and a customer with
 * Priya's very number at another tenant have their own. Priya's export holds all of hers and nothing of theirs.
 */
beforeEach(forgetProviderHealth);

interface ExportDoc {
  subject: { phone: string | null; customerId: string | null };
  piiRedaction: string;
  phones: string[];
  customers: Array<{ id: string; phone: string | null }>;
  calls: Array<{ id: string; sessionId: string; fromNumber: string }>;
  callEvents: Array<{ callId: string; event: string; detail: string | null }>;
  sessions: Array<{ id: string }>;
  transcripts: Array<{ sessionId: string; role: string; text: string }>;
  providerSwitches: unknown[];
  invoices: Array<{ id: string; customerId: string }>;
  invoiceItems: Array<{ invoiceId: string }>;
  ledger: Array<{ customerId: string; kind: string }>;
  reminders: Array<{ customerId: string; message: string }>;
  whatsappMessages: Array<{ waId: string; direction: string; body: string }>;
  auditEntries: unknown[];
  analysis: Array<{ sessionId: string; status: string; result: { summary: string } | null }>;
  escalations: unknown[];
  recordings: Array<{ id: string; sessionId: string; durationMs: number; url?: string; expiresAt?: string; r2Key?: string }>;
  notes: { recordings: string };
  maxRowsPerSection: number;
  truncated: string[];
}

const exportOf = async (token: string, body: unknown, status = 200) => {
  const response = await api("/api/v1/privacy/export", { method: "POST", token, body });
  const text = await response.text();
  expect(response.status, text).toBe(status);
  return JSON.parse(text) as ExportDoc;
};

let shop: { tenantId: string; token: string; number: string; whatsapp: string };
let priyaWa: string;
let priya: { customerId: string; invoiceId: string };
let rahul: { customerId: string; invoiceId: string };
let priyaCall: Awaited<ReturnType<typeof spokenCall>>;
let strangerCall: Awaited<ReturnType<typeof spokenCall>>;

beforeAll(async () => {
  const fixture = await tenantWithNumbers([{ carrier: "twilio", provider: "openai", instructions: "You are the shop." }]);
  shop = {
    tenantId: fixture.tenantId,
    token: fixture.token,
    number: fixture.numbers[0]!,
    whatsapp: await businessNumber(fixture.tenantId),
  };
  priyaWa = randomWaId();
  const rahulWa = randomWaId();
  priya = await customerWithBooks(shop.token, shop.whatsapp, "Priya", priyaWa, "What is my balance? mail priya@example.com");
  rahul = await customerWithBooks(shop.token, shop.whatsapp, "Rahul", rahulWa, "What is my balance?");
  priyaCall = await spokenCall({ token: shop.token, number: shop.number, from: `+${priyaWa}`, said: "This is Priya about my invoice" });
  strangerCall = await spokenCall({ token: shop.token, number: shop.number, from: `+${rahulWa}`, said: "This is Rahul" });

  // Another tenant with a customer of Priya's very number, and a message from it.
  const elsewhere = await tenantWithNumbers([]);
  await customerWithBooks(elsewhere.token, await businessNumber(elsewhere.tenantId), "Priya elsewhere", priyaWa, "Hello other shop");
}, 120_000);

describe("privacy export", () => {
  it("by phone: Priya's calls, session, transcript, events, books and messages, and nothing of anyone else", async () => {
    const doc = await exportOf(shop.token, { phone: `+${priyaWa}` });
    expect(doc.subject).toEqual({ phone: `+${priyaWa}`, customerId: null });
    expect(doc.phones).toEqual([`+${priyaWa}`]);
    expect(doc.customers.map((row) => row.id)).toEqual([priya.customerId]);
    expect(doc.calls.map((row) => row.id)).toEqual([priyaCall.call.id]);
    expect(doc.sessions.map((row) => row.id)).toEqual([priyaCall.sessionId]);
    expect(doc.transcripts.filter((line) => line.role === "caller").map((line) => line.text)).toEqual([
      "This is Priya about my invoice",
      "[DTMF] 4",
    ]);
    expect(new Set(doc.transcripts.map((line) => line.sessionId))).toEqual(new Set([priyaCall.sessionId]));
    expect(doc.callEvents.length).toBeGreaterThan(0);
    expect(new Set(doc.callEvents.map((event) => event.callId))).toEqual(new Set([priyaCall.call.id]));
    expect(doc.invoices.map((row) => row.id)).toEqual([priya.invoiceId]);
    expect(doc.invoiceItems.map((row) => row.invoiceId)).toEqual([priya.invoiceId]);
    expect(doc.ledger.map((row) => row.kind).sort()).toEqual(["invoice", "payment"]);
    expect(doc.reminders.map((row) => row.message)).toEqual(["Priya, please pay the rest"]);
    expect(doc.whatsappMessages.map((row) => row.direction).sort()).toEqual(["inbound", "outbound"]);
    expect(doc.whatsappMessages.find((row) => row.direction === "inbound")!.body).toBe("What is my balance? mail priya@example.com");
    // Her call is still live: not analysed, not yet a recording (the shop does not record anyway).
    expect(doc).toMatchObject({ analysis: [], escalations: [], recordings: [], truncated: [], piiRedaction: "off" });

    const text = JSON.stringify(doc);
    for (const foreign of [
      rahul.customerId,
      rahul.invoiceId,
      strangerCall.sessionId,
      strangerCall.call.id,
      "This is Rahul",
      "Rahul pays",
      "Rahul, please",
      "elsewhere",
      "other shop",
    ]) {
      expect(text).not.toContain(foreign);
    }
  });

  it("by customer id: the same person, found through the customer's phone", async () => {
    const doc = await exportOf(shop.token, { customerId: priya.customerId });
    expect(doc.phones).toEqual([`+${priyaWa}`]);
    expect(doc.calls.map((row) => row.id)).toEqual([priyaCall.call.id]);
    expect(doc.invoices.map((row) => row.id)).toEqual([priya.invoiceId]);
    await exportOf(shop.token, { customerId: crypto.randomUUID() }, 404);
  });

  it("with piiRedaction mask: free text is masked in the export, older rows stored plain included", async () => {
    const set = await api("/api/v1/tenant/settings", { method: "PATCH", token: shop.token, body: { piiRedaction: "mask" } });
    expect(set.status).toBe(200);
    try {
      const doc = await exportOf(shop.token, { phone: `+${priyaWa}` });
      expect(doc.piiRedaction).toBe("mask");
      expect(doc.whatsappMessages.find((row) => row.direction === "inbound")!.body).toBe("What is my balance? mail [email]");
      expect(doc.transcripts.filter((line) => line.role === "caller").map((line) => line.text)).toContain("[DTMF] •");
      expect(doc.callEvents.filter((event) => event.event === "media.dtmf").map((event) => event.detail)).toEqual(["•"]);
      // Stored from now on masked: a new message's body never reaches D1 in the clear.
      expect((await postWhatsApp(textDelivery(shop.whatsapp, priyaWa, "card 4242 4242 4242 4242"))).status).toBe(200);
      const stored = await env.DB.prepare(
        "SELECT body FROM whatsapp_messages WHERE wa_id = ? AND direction = 'inbound' ORDER BY created_at",
      )
        .bind(priyaWa)
        .all<{ body: string }>();
      expect(stored.results.map((row) => row.body)).toContain("card [card ending 4242]");
      expect(JSON.stringify(stored.results)).not.toContain("4242 4242");
    } finally {
      await api("/api/v1/tenant/settings", { method: "PATCH", token: shop.token, body: { piiRedaction: "off" } });
    }
  });

  it("takes exactly one of phone and customerId, admins only, and audits the subject as a hash", async () => {
    await exportOf(shop.token, {}, 400);
    await exportOf(shop.token, { phone: `+${priyaWa}`, customerId: priya.customerId }, 400);
    await exportOf(shop.token, { phone: "12345" }, 400);
    const supervisor = (await userWithToken(shop.tenantId, "supervisor")).accessToken;
    expect((await api("/api/v1/privacy/export", { method: "POST", token: supervisor, body: { phone: `+${priyaWa}` } })).status).toBe(403);

    await exportOf(shop.token, { phone: `+${priyaWa}` });
    const audit = await get<{ items: Array<{ action: string; targetId: string | null; details: unknown }> }>(
      shop.token,
      "/api/v1/audit-log?limit=100",
    );
    const exports = audit.items.filter((item) => item.action === "privacy.export");
    expect(exports.length).toBeGreaterThan(0);
    expect(exports[0]!.targetId).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(exports)).not.toContain(priyaWa);
  });

  it("a recorded, ended call: its analysis and its recording as a signed link that plays, nobody else's", async () => {
    const recorded = await tenantWithNumbers([{ carrier: "twilio", provider: "openai", instructions: "You are the shop." }]);
    const settings = { recording: "on", consentMessage: null };
    expect((await api("/api/v1/tenant/settings", { method: "PATCH", token: recorded.token, body: settings })).status).toBe(200);
    const [asha, other] = [randomE164(), randomE164()];
    const ashaCall = await spokenCall({ token: recorded.token, number: recorded.numbers[0]!, from: asha, said: "This is Asha" });
    const otherCall = await spokenCall({ token: recorded.token, number: recorded.numbers[0]!, from: other, said: "Someone else" });
    for (const call of [ashaCall, otherCall]) {
      expect((await twilioStatus(call.callSid, recorded.numbers[0]!, "completed", { sequence: 5 })).status).toBe(204);
    }
    const doc = await eventually(async () => {
      const current = await exportOf(recorded.token, { phone: asha });
      return current.recordings.length === 1 && current.analysis[0]?.status === "ready" && current;
    }, 300);
    expect(doc.analysis.map((row) => row.sessionId)).toEqual([ashaCall.sessionId]);
    expect(doc.analysis[0]!.result!.summary).toContain("This is Asha");
    const [recording] = doc.recordings;
    expect(recording).toMatchObject({ sessionId: ashaCall.sessionId });
    expect(recording!.r2Key).toBeUndefined();
    expect(doc.notes.recordings).toMatch(/signed link/);
    const wav = await exports.default.fetch(recording!.url!);
    expect(wav.status).toBe(200);
    expect(wav.headers.get("content-type")).toBe("audio/wav");
    expect(new TextDecoder().decode((await wav.arrayBuffer()).slice(0, 4))).toBe("RIFF");
    expect(JSON.stringify(doc)).not.toContain(otherCall.sessionId);
  });
});
