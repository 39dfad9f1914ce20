import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { phoneticKey } from "../../../workers/business/phonetic.ts";
import { database } from "../../../workers/shared/db/client.ts";
import { customers } from "../../../workers/shared/db/schema.ts";
import { api, createTenant, errorOf, userWithToken } from "../support/identity.ts";

/**
 * `GET /api/v1/customers/search?q=` over the FTS5 trigram index (migration 0010) and the re-rank
 * (workers/business/customer-search.ts): what speech recognition gets wrong still finds the customer, the index
 * follows every write to customers through its triggers, and a tenant never sees another's rows.
 * Customers are written straight to D1, as the business engine writes them (with their `phoneticKey`).
 */
interface Hit {
  customer: { id: string; name: string; nickname: string | null; phone: string | null; email: string | null; balance: number };
  score: number;
  matchedOn: string[];
}

let tenantId: string;
let token: string;
const ids: Record<string, string> = {};

async function addCustomer(tenant: string, name: string, extra: { nickname?: string; phone?: string; email?: string } = {}) {
  const id = crypto.randomUUID();
  const now = Date.now();
  await database(env.DB)
    .insert(customers)
    .values({ id, tenantId: tenant, name, ...extra, phonetic: phoneticKey(name, extra.nickname), createdAt: now, updatedAt: now });
  return id;
}

async function search(q: string, as = token): Promise<Hit[]> {
  const response = await api(`/api/v1/customers/search?q=${encodeURIComponent(q)}`, { token: as });
  expect(response.status, q).toBe(200);
  return ((await response.json()) as { matches: Hit[] }).matches;
}
const namesOf = (hits: Hit[]) => hits.map((hit) => hit.customer.name);

beforeAll(async () => {
  tenantId = await createTenant("Kirana");
  token = (await userWithToken(tenantId, "viewer")).accessToken;
  ids.rahul = await addCustomer(tenantId, "Rahul Sharma", { phone: "+919876543210", email: "rahul.sharma@example.in" });
  ids.suresh = await addCustomer(tenantId, "Suresh Kumar", { nickname: "Bablu", phone: "+919812345678" });
  ids.priya = await addCustomer(tenantId, "Priya Verma", { nickname: "Guddi", email: "priya@shop.example" });
  ids.rohit = await addCustomer(tenantId, "Rohit Sharma", { phone: "+919900011122" });
  ids.anita = await addCustomer(tenantId, "Anita Desai");
  // Many Sharmas: more than a page of candidates for one word.
  for (let i = 0; i < 8; i++) await addCustomer(tenantId, `Customer${i} Sharma`);
});

describe("customer search", () => {
  it("finds Rahul when speech recognition heard Raul (no shared trigram; one sound code)", async () => {
    const hits = await search("Raul");
    expect(hits[0]?.customer.id).toBe(ids.rahul);
    expect(hits[0]?.matchedOn).toContain("phonetic");
  });

  it("finds Suresh from Sures, a word cut short", async () => {
    const hits = await search("Sures");
    expect(hits[0]?.customer.id).toBe(ids.suresh);
    expect(hits[0]?.matchedOn).toContain("name");
  });

  it("finds a customer by a misspelt nickname", async () => {
    const hits = await search("Gudi");
    expect(hits[0]?.customer.id).toBe(ids.priya);
    expect(hits[0]?.matchedOn).toContain("nickname");
  });

  it("finds a customer by the last digits of the phone, however the number is written", async () => {
    for (const q of ["43210", "+91 98765-43210", "98765 43210", "(987) 654-3210"]) {
      const hits = await search(q);
      expect(hits[0]?.customer.id, q).toBe(ids.rahul);
      expect(hits[0]?.matchedOn, q).toEqual(["phone"]);
    }
    // A run of digits in the middle of a number is not its end.
    expect(await search("98765")).toEqual([]);
  });

  it("finds a customer by email, whole or in part, in any case", async () => {
    expect((await search("Rahul.Sharma@Example.in"))[0]?.customer.id).toBe(ids.rahul);
    const partial = await search("priya@shop");
    expect(partial[0]?.customer.id).toBe(ids.priya);
    expect(partial[0]?.matchedOn).toContain("email");
  });

  it("does not mind word order: Sharma Rahul is Rahul Sharma, first and exact", async () => {
    const hits = await search("Sharma Rahul");
    expect(hits[0]?.customer.id).toBe(ids.rahul);
    expect(hits[0]?.score).toBe(1);
    expect(namesOf(hits)).toContain("Rohit Sharma");
  });

  it("answers at most five, best first, each with a score in 0…1 and what matched", async () => {
    const hits = await search("Sharma");
    expect(hits).toHaveLength(5);
    for (const hit of hits) {
      expect(hit.score).toBeGreaterThan(0);
      expect(hit.score).toBeLessThanOrEqual(1);
      expect(hit.matchedOn).toContain("name");
    }
    const scores = hits.map((hit) => hit.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
  });

  it("two tenants never see each other's customers", async () => {
    const other = await createTenant("Other shop");
    const otherToken = (await userWithToken(other, "viewer")).accessToken;
    const theirs = await addCustomer(other, "Rahul Sharma", { phone: "+919876543210", email: "rahul.sharma@example.in" });
    for (const q of ["Rahul Sharma", "Raul", "43210", "rahul.sharma@example.in"]) {
      const mine = await search(q);
      expect(
        mine.map((hit) => hit.customer.id),
        q,
      ).not.toContain(theirs);
      const their = await search(q, otherToken);
      expect(
        their.map((hit) => hit.customer.id),
        q,
      ).toEqual([theirs]);
    }
  });

  it("reads hostile FTS5 syntax in q as plain text: no error, no wider match", async () => {
    for (const q of [
      '"',
      'Rahul"',
      "*",
      "Ra*",
      "NEAR(Rahul Sharma)",
      "Rahul OR Priya",
      "name:Rahul",
      "{name}: x",
      "^Rahul",
      "-",
      "'; DROP TABLE customers; --",
      "AND",
      'rahul@" OR "priya',
      "*@*",
      'x" NEAR "@',
    ]) {
      const response = await api(`/api/v1/customers/search?q=${encodeURIComponent(q)}`, { token });
      expect(response.status, q).toBe(200);
      const { matches } = (await response.json()) as { matches: Hit[] };
      // Quoted, "Rahul OR Priya" is three words to match, not a union: Priya is not found by Rahul's words.
      if (q === "Rahul OR Priya") expect(matches[0]?.customer.id).toBe(ids.rahul);
      if (q === "*" || q === "-" || q === '"') expect(matches).toEqual([]);
    }
    expect((await search("Sharma")).length).toBe(5);
  });

  it("follows updates and deletes of customers (the index is kept by triggers)", async () => {
    const id = await addCustomer(tenantId, "Zubin Mehta", { phone: "+919811122233" });
    expect((await search("Zubin"))[0]?.customer.id).toBe(id);

    await env.DB.prepare("UPDATE customers SET name = ?, phonetic = ?, phone = ? WHERE id = ?")
      .bind("Farhan Akhtar", phoneticKey("Farhan Akhtar"), "+919844455566", id)
      .run();
    expect(await search("Zubin")).toEqual([]);
    expect(await search("22233")).toEqual([]);
    expect((await search("Farhan"))[0]?.customer.id).toBe(id);
    expect((await search("55566"))[0]?.customer.id).toBe(id);

    // A balance change (every invoice and payment) is no change to the index, and the customer is found with it.
    await env.DB.prepare("UPDATE customers SET balance = 12500 WHERE id = ?").bind(id).run();
    expect((await search("Farhan"))[0]?.customer.balance).toBe(12500);

    await env.DB.prepare("DELETE FROM customers WHERE id = ?").bind(id).run();
    expect(await search("Farhan")).toEqual([]);
    const { results } = await env.DB.prepare("SELECT rowid FROM customer_search WHERE customer_search MATCH ?").bind('"farhan"').all();
    expect(results).toEqual([]);
  });

  it("q is required, 1 to 100 characters, not blank", async () => {
    for (const path of [
      "/api/v1/customers/search",
      "/api/v1/customers/search?q=",
      `/api/v1/customers/search?q=${"a".repeat(101)}`,
      "/api/v1/customers/search?q=%20%20",
    ]) {
      const response = await api(path, { token });
      expect(response.status, path).toBe(400);
      expect((await errorOf(response)).code).toBe("validation_failed");
    }
    expect((await api(`/api/v1/customers/search?q=${"a".repeat(100)}`, { token })).status).toBe(200);
  });

  it("needs a signed-in caller", async () => {
    expect((await api("/api/v1/customers/search?q=Rahul")).status).toBe(401);
  });
});
