import { describe, expect, it } from "vitest";
import type { Intent } from "../../../workers/business/intents/intent.ts";
import { parseIntent } from "../../../workers/business/intents/parser.ts";

// Thursday 3 December 2026, 11:30 in Kolkata (06:00 UTC); "Friday" is the next day.
const context = { minorDigits: 2, timezone: "Asia/Kolkata", now: Date.UTC(2026, 11, 3, 6, 0) };

const table: Array<[string, Intent]> = [
  [
    "Create an invoice for Rahul: 2 kg rice and a dozen eggs",
    {
      kind: "create_invoice",
      customer: "Rahul",
      items: [
        { product: "rice", quantityMilli: 2000, unit: "kg" },
        { product: "eggs", quantityMilli: 12_000, unit: null },
      ],
    },
  ],
  [
    "bill Rahul for half kg sugar, 3 packets of biscuits",
    {
      kind: "create_invoice",
      customer: "Rahul",
      items: [
        { product: "sugar", quantityMilli: 500, unit: "kg" },
        { product: "biscuits", quantityMilli: 3000, unit: "packet" },
      ],
    },
  ],
  ["Priya paid 500 by UPI", { kind: "record_payment", customer: "Priya", amount: 50_000, mode: "upi" }],
  ["Priya paid ₹500 via gpay", { kind: "record_payment", customer: "Priya", amount: 50_000, mode: "upi" }],
  ["Rahul paid Rs 1,00,000", { kind: "record_payment", customer: "Rahul", amount: 10_000_000, mode: "other" }],
  ["Received ₹12.50 from Priya by cash", { kind: "record_payment", customer: "Priya", amount: 1250, mode: "cash" }],
  ["Priya paid 500.5 by card", { kind: "record_payment", customer: "Priya", amount: 50_050, mode: "card" }],
  ["Remind Amit to pay 1,000 by Friday", { kind: "schedule_reminder", customer: "Amit", amount: 100_000, dueDate: "2026-12-04" }],
  ["Remind Amit to pay on 5 Dec", { kind: "schedule_reminder", customer: "Amit", amount: null, dueDate: "2026-12-05" }],
  ["remind Amit to pay in 3 days", { kind: "schedule_reminder", customer: "Amit", amount: null, dueDate: "2026-12-06" }],
  ["Remind Priya about 250 tomorrow", { kind: "schedule_reminder", customer: "Priya", amount: 25_000, dueDate: "2026-12-04" }],
  ["What's Suresh's balance?", { kind: "get_balance", customer: "Suresh" }],
  ["What\u2019s Suresh\u2019s balance?", { kind: "get_balance", customer: "Suresh" }],
  ["What is my balance?", { kind: "get_balance", customer: null }],
  ["balance of Rahul", { kind: "get_balance", customer: "Rahul" }],
  ["how much does Suresh owe", { kind: "get_balance", customer: "Suresh" }],
  ["Show recent invoices", { kind: "list_invoices", customer: null, limit: 5 }],
  ["Show invoices for Rahul", { kind: "list_invoices", customer: "Rahul", limit: 5 }],
  ["Find Rahul", { kind: "find_customer", query: "Rahul" }],
  ["hello there", { kind: "unknown" }],
  // Sub-paise amounts are not money in INR: not understood rather than rounded.
  ["Priya paid 5.005 by cash", { kind: "unknown" }],
];

describe("offline intent parser", () => {
  it.each(table)("%s", (text, intent) => {
    expect(parseIntent(text, context)).toEqual(intent);
  });

  it("reads 'tomorrow' in the tenant's zone, not UTC", () => {
    // 20:00 UTC on 3 Dec is already 4 Dec in Kolkata: tomorrow there is the 5th.
    const late = { ...context, now: Date.UTC(2026, 11, 3, 20, 0) };
    expect(parseIntent("Remind Amit to pay tomorrow", late)).toEqual({
      kind: "schedule_reminder",
      customer: "Amit",
      amount: null,
      dueDate: "2026-12-05",
    });
  });
});
