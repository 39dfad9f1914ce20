import { describe, expect, it } from "vitest";
import { luhnValid, maskPii, verhoeffValid } from "../../../workers/shared/pii.ts";

describe("maskPii", () => {
  it.each([
    ["my card is 4111 1111 1111 1111 thanks", "my card is [card ending 1111] thanks"],
    ["card 4242-4242-4242-4242", "card [card ending 4242]"],
    ["amex 378282246310005", "amex [card ending 0005]"],
    ["mail me at asha.k+shop@example.co.in please", "mail me at [email] please"],
    ["PAN ABCDE1234F on file", "PAN [id] on file"],
    ["ssn 123-45-6789", "ssn [id]"],
    ["aadhaar 2341 2341 2346", "aadhaar [id]"],
    ["call +919876543210 now", "call [phone] now"],
    ["call 098765 43210", "call [phone]"],
    ["office (415) 555-0132 ext", "office [phone] ext"],
    ["dial 9876-543-210.", "dial [phone]."],
  ])("masks %s", (input, expected) => {
    expect(maskPii(input)).toBe(expected);
  });

  it.each([
    ["a Luhn-invalid 16-digit number", "ref 4111 1111 1111 1112"],
    ["an invoice amount", "the total is 1,250 rupees"],
    ["an amount in lakhs", "balance 12,50,000.00"],
    ["a decimal amount", "paid 4500.50 today"],
    ["a short order number", "order 1234567"],
    ["a date", "due 2026-12-03"],
    ["a time", "at 10:30"],
    ["plain words", "I would like two kilos of rice"],
    ["a 12-digit number failing Verhoeff that is too long for nothing", "batch 1234 5678 9012 3456 7"],
  ])("leaves %s alone", (_case, input) => {
    expect(maskPii(input)).toBe(input);
  });

  it("checks Luhn and Verhoeff digits", () => {
    expect(luhnValid("4111111111111111")).toBe(true);
    expect(luhnValid("4111111111111112")).toBe(false);
    expect(verhoeffValid("234123412346")).toBe(true);
    expect(verhoeffValid("234123412347")).toBe(false);
  });
});
