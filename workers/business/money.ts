import { currencyMinorDigits } from "../shared/tenant-settings.ts";
import { BusinessError } from "./errors.ts";

/**
 * The most one amount (a price, a payment, an invoice's total) may be, in major units: ten crore rupees, a hundred
 * million dollars. Far above a small shop's business, so a larger figure is a misheard or mistyped one; and far below
 * where integer arithmetic on minor units stops being exact.
 */
export const MAX_AMOUNT_MAJOR = 100_000_000;
/** The most units of one item on one invoice. */
export const MAX_QUANTITY = 1_000_000;

/** The cap in a currency's minor unit. */
export function maxMinor(currency: string): number {
  return MAX_AMOUNT_MAJOR * 10 ** currencyMinorDigits(currency);
}

/** Refuses a minor-unit amount that is not a whole number, not positive, or above the cap. */
export function assertAmount(minor: number, currency: string, what = "The amount"): number {
  if (!Number.isSafeInteger(minor) || minor <= 0)
    throw new BusinessError("invalid_amount", 422, `${what} must be a whole number of the smallest unit of ${currency}, above zero`);
  if (minor > maxMinor(currency))
    throw new BusinessError("invalid_amount", 422, `${what} is more than ${MAX_AMOUNT_MAJOR.toLocaleString("en")} ${currency}`);
  return minor;
}

// Digits, optionally grouped by commas (1,500 and the Indian 1,50,000), then at most one decimal point.
const AMOUNT = /^(\d+|\d{1,3}(?:,\d{2,3})+)(?:\.(\d+))?$/;

/**
 * An amount as a person or an intent gives it, in major units ("500", 12.5, "1,250.75"), to the currency's minor
 * unit. Exact: the digits are read as text, never multiplied as a float. Refuses more decimals than the currency
 * has (12.505 rupees), zero, negatives, NaN and amounts above the cap.
 */
export function parseAmount(input: string | number, currency: string): number {
  const text = typeof input === "number" ? (Number.isFinite(input) ? numberText(input) : "") : input.trim();
  const match = AMOUNT.exec(text);
  if (!match) throw new BusinessError("invalid_amount", 422, `"${String(input).slice(0, 40)}" is not an amount`);
  const digits = currencyMinorDigits(currency);
  const whole = (match[1] ?? "").replaceAll(",", "");
  const fraction = match[2] ?? "";
  if (fraction.length > digits)
    throw new BusinessError("invalid_amount", 422, `${currency} has ${digits} decimal places; the amount has ${fraction.length}`);
  // Compared as text first, so a number of many digits is refused before it loses precision as a Number.
  if (whole.replace(/^0+/, "").length > String(MAX_AMOUNT_MAJOR).length)
    throw new BusinessError("invalid_amount", 422, `The amount is more than ${MAX_AMOUNT_MAJOR.toLocaleString("en")} ${currency}`);
  return assertAmount(Number(whole + fraction.padEnd(digits, "0")), currency);
}

/** A quantity (kilos, pieces; up to three decimals) in thousandths, exact; refuses zero, negatives and absurd counts. */
export function quantityMilli(quantity: number): number {
  if (!Number.isFinite(quantity) || quantity <= 0)
    throw new BusinessError("invalid_quantity", 422, "A quantity must be a number above zero");
  if (quantity > MAX_QUANTITY)
    throw new BusinessError("invalid_quantity", 422, `A quantity may be at most ${MAX_QUANTITY.toLocaleString("en")}`);
  const milli = Math.round(quantity * 1000);
  if (Math.abs(milli - quantity * 1000) > 1e-6 || milli === 0)
    throw new BusinessError("invalid_quantity", 422, "A quantity may have at most three decimal places");
  return milli;
}

/** Price of `milli` thousandths at `unitPrice` each, rounded half up to the minor unit (exact, in BigInt). */
export function lineAmount(unitPrice: number, milli: number): number {
  return Number((BigInt(unitPrice) * BigInt(milli) + 500n) / 1000n);
}

// Plain digits for a JS number: `String(1e21)` would be exponent notation, which is never a person's amount anyway.
function numberText(value: number): string {
  return value.toLocaleString("en", { useGrouping: false, maximumFractionDigits: 20 });
}
