import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BusinessEngine } from "../../../workers/business/engine.ts";
import { BusinessError } from "../../../workers/business/errors.ts";
import { parseAmount, quantityMilli } from "../../../workers/business/money.ts";
import { createTenant } from "../support/identity.ts";
import { expectLedgerInvariant } from "../support/ledger-invariant.ts";

/** The engine as the voice tools and WhatsApp use it (no HTTP): money parsing, resolution, and the books adding up. */
const engineFor = (tenantId: string) => new BusinessEngine(env.DB, tenantId, { source: "voice", by: "test" }, env.CACHE);

async function refusal(promise: Promise<unknown>): Promise<BusinessError> {
  const error = await promise.then(
    () => null,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(BusinessError);
  return error as BusinessError;
}

describe("money", () => {
  it("reads major units to minor units exactly, by the currency's digits", () => {
    expect(parseAmount("500", "INR")).toBe(50_000);
    expect(parseAmount(12.5, "INR")).toBe(1_250);
    expect(parseAmount("1,50,000.75", "INR")).toBe(15_000_075);
    expect(parseAmount("0.29", "USD")).toBe(29);
    expect(parseAmount("1500", "JPY")).toBe(1_500);
  });

  it("refuses what is not a sane amount", () => {
    for (const [input, currency] of [
      ["12.505", "INR"],
      ["12.5", "JPY"],
      ["0", "INR"],
      [-5, "INR"],
      [Number.NaN, "INR"],
      ["abc", "INR"],
      ["100000001", "INR"],
      ["99999999999999999999", "USD"],
    ] as const)
      expect(() => parseAmount(input, currency), String(input)).toThrow(BusinessError);
  });

  it("quantities are exact thousandths; zero, negative, over-precise and absurd ones are refused", () => {
    expect(quantityMilli(0.5)).toBe(500);
    expect(quantityMilli(12)).toBe(12_000);
    for (const bad of [0, -1, 0.0001, 1e9, Number.POSITIVE_INFINITY]) expect(() => quantityMilli(bad), String(bad)).toThrow(BusinessError);
  });
});

describe("business engine", () => {
  it("invoices, pays and voids with the running balance kept", async () => {
    const tenantId = await createTenant();
    const engine = engineFor(tenantId);
    const customer = await engine.createCustomer({ name: "Rahul Sharma", phone: "+91 98123 45678", nickname: "Rahul" });
    expect(customer.phone).toBe("+919812345678");
    const rice = await engine.createProduct({ name: "Rice", unitPrice: 6_000, unit: "kg" });
    const invoice = await engine.createInvoice({
      customerId: customer.id,
      items: [
        { productName: "rice", quantity: 2.5 },
        { productName: "Delivery", quantity: 1, unitPrice: 3_000 },
      ],
    });
    expect(invoice.total).toBe(18_000);
    expect(invoice.items[0]).toMatchObject({ productId: rice.id, quantity: 2.5, amount: 15_000 });
    await engine.recordPayment({ customerId: customer.id, amount: 5_000, mode: "upi" });
    expect(await engine.balance(customer.id)).toBe(13_000);
    await engine.voidInvoice(invoice.id, "wrong customer");
    expect(await engine.balance(customer.id)).toBe(-5_000);
    const { items } = await engine.ledger(customer.id);
    expect(items.map((entry) => [entry.kind, entry.balanceAfter])).toEqual([
      ["invoice", 18_000],
      ["payment", 13_000],
      ["void", -5_000],
    ]);
    expect((await refusal(engine.voidInvoice(invoice.id))).code).toBe("invoice_already_void");
    await expectLedgerInvariant(tenantId);
  });

  it("resolves a customer by id or one exact name; several or none are refused with candidates", async () => {
    const tenantId = await createTenant();
    const engine = engineFor(tenantId);
    const asha = await engine.createCustomer({ name: "Asha Rao" });
    await engine.createCustomer({ name: "Ravi Kumar" });
    await engine.createCustomer({ name: "Ravi Kumar", phone: "+919800000001" });
    expect((await engine.resolveCustomer(asha.id)).id).toBe(asha.id);
    expect((await engine.resolveCustomer("asha rao")).id).toBe(asha.id);
    const ambiguous = await refusal(engine.resolveCustomer("Ravi Kumar"));
    expect(ambiguous.code).toBe("ambiguous_customer");
    expect(ambiguous.candidates).toHaveLength(2);
    const missing = await refusal(engine.resolveCustomer("Ravee Kumar"));
    expect(missing.code).toBe("customer_not_found");
    expect(missing.candidates?.map((c) => c.name)).toEqual(["Ravi Kumar", "Ravi Kumar"]);
    // Scored by the fuzzy search (an edit and a sound away from an exact match), not as a certainty.
    for (const { score } of missing.candidates ?? []) expect(score).toBeGreaterThan(0.5);
    for (const { score } of missing.candidates ?? []) expect(score).toBeLessThan(1);
    // A misheard first name still finds its customer among the candidates (Soundex: Raul and Rahul are both R400).
    await engine.createCustomer({ name: "Rahul Sharma" });
    expect((await refusal(engine.resolveCustomer("Raul"))).candidates?.[0]?.name).toBe("Rahul Sharma");
    expect(await engine.resolveCustomer(asha.id).then((c) => c.name)).toBe("Asha Rao");
    const other = engineFor(await createTenant());
    expect((await refusal(other.resolveCustomer(asha.id))).code).toBe("customer_not_found");
  });

  it("concurrent voids of one invoice (a tool call and a REST request at once) reverse it exactly once", async () => {
    const tenantId = await createTenant();
    const engine = engineFor(tenantId);
    const customer = await engine.createCustomer({ name: "Race" });
    const invoice = await engine.createInvoice({
      customerId: customer.id,
      items: [{ productName: "Cloth", quantity: 2, unitPrice: 7_500 }],
    });
    // Each call reads the invoice as open before any of them writes: only the guard inside the batch can stop a second reversal.
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => engineFor(tenantId).voidInvoice(invoice.id)));
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    for (const outcome of outcomes)
      if (outcome.status === "rejected") expect((outcome.reason as BusinessError).code).toBe("invoice_already_void");
    expect(await engine.balance(customer.id)).toBe(0);
    expect((await engine.ledger(customer.id)).items.map((entry) => entry.kind)).toEqual(["invoice", "void"]);
    await expectLedgerInvariant(tenantId);
  });

  it("concurrent payments each apply to the balance the database holds, not one read before", async () => {
    const tenantId = await createTenant();
    const customer = await engineFor(tenantId).createCustomer({ name: "Many Payments" });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => engineFor(tenantId).recordPayment({ customerId: customer.id, amount: 100 + i, mode: "cash" })),
    );
    expect(await engineFor(tenantId).balance(customer.id)).toBe(-(20 * 100 + 190));
    await expectLedgerInvariant(tenantId);
  });
});
