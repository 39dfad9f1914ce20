import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BusinessEngine } from "../../../workers/business/engine.ts";
import { INTENT_JSON_SCHEMA } from "../../../workers/business/intents/model.ts";
import { tenantScopeFor } from "../../../workers/shared/db/tenant-scope.ts";
import { TENANT_SETTINGS_DEFAULTS, writeTenantSettingsChange } from "../../../workers/shared/tenant-settings.ts";
import { createTenant } from "../support/identity.ts";
import { businessNumber, modelRequests, postWhatsApp, randomWaId, replyNumber, scriptModel, textDelivery } from "../support/whatsapp.ts";

/**
 * The text-model path: the simulated OpenAI Responses API answers the texts a test scripted (and checks the bearer
 * and the structured-output request); the platform counts the tokens it reports and caches the reading.
 */
async function scrape(): Promise<Map<string, number>> {
  const response = await exports.default.fetch("https://switchboard.test/metrics", {
    headers: { Authorization: "Bearer metrics-test-token-0123456789" },
  });
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}
const delta = (before: Map<string, number>, after: Map<string, number>, key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);

async function shop() {
  const tenantId = await createTenant("Model shop");
  const number = await businessNumber(tenantId);
  const owner = randomWaId();
  await writeTenantSettingsChange(tenantScopeFor(env, tenantId), ["whatsappOperators"], {
    ...TENANT_SETTINGS_DEFAULTS,
    whatsappOperators: [`+${owner}`],
  });
  const engine = new BusinessEngine(env.DB, tenantId, { source: "api" }, env.CACHE);
  await engine.createCustomer({ name: "Rahul" });
  let replies = 0;
  const say = async (text: string) => {
    expect((await postWhatsApp(textDelivery(number, owner, text))).status).toBe(200);
    replies++;
    return replyNumber(owner, replies);
  };
  return { say };
}

const EMPTY = { customer: null, query: null, items: [], amount: null, mode: null, due: null, limit: null };

describe("intents from the text model", () => {
  it("asks with a strict JSON schema, counts the tokens reported, and acts on the answer", async () => {
    const { say } = await shop();
    // Phrasing the offline parser does not know: only the model reads it.
    const text = `Rahul ne 300 UPI se diye ${crypto.randomUUID().slice(0, 8)}`;
    await scriptModel(
      text,
      { ...EMPTY, intent: "record_payment", customer: "Rahul", amount: "300", mode: "upi" },
      { input: 111, output: 22 },
    );
    const before = await scrape();
    expect(await say(text)).toBe("Record ₹300.00 from Rahul by UPI? Reply YES to record it.");
    const after = await scrape();

    const [request] = await modelRequests(text);
    expect(request?.scripted).toBe(true);
    expect(request?.body).toMatchObject({
      model: expect.any(String),
      input: [{ role: "user", content: text }],
      text: { format: { type: "json_schema", name: "shop_intent", strict: true, schema: INTENT_JSON_SCHEMA } },
    });
    expect(delta(before, after, 'llm_tokens_total{provider="openai",kind="input"}')).toBe(111);
    expect(delta(before, after, 'llm_tokens_total{provider="openai",kind="output"}')).toBe(22);
  });

  it("answers the same text in the same context from the cache, without a second model call", async () => {
    const { say } = await shop();
    const text = `Saare bill dikhao ${crypto.randomUUID().slice(0, 8)}`;
    await scriptModel(text, { ...EMPTY, intent: "list_invoices", limit: 3 });
    const before = await scrape();
    expect(await say(text)).toBe("No invoices yet.");
    expect(await say(`  ${text.toUpperCase()}?`)).toBe("No invoices yet.");
    const after = await scrape();
    expect(await modelRequests(text)).toHaveLength(1);
    expect(delta(before, after, 'cache_requests_total{tier="memory",kind="intent",result="hit"}')).toBe(1);
    expect(delta(before, after, 'cache_requests_total{tier="kv",kind="intent",result="miss"}')).toBe(1);
  });

  it("falls back to the offline parser when the model fails", async () => {
    const { say } = await shop();
    const text = "Show recent invoices";
    expect(await say(text)).toBe("No invoices yet.");
    expect((await modelRequests(text)).some((request) => !request.scripted)).toBe(true);
  });
});
