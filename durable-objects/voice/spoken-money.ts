import { currencyMinorDigits } from "../../workers/shared/tenant-settings.ts";

/**
 * Money between the agent and the books: people say amounts in the currency's major unit ("450 rupees 50"), the
 * engine keeps integers in its minor unit (45050 paise).
 */

/** An amount as the agent should say it, e.g. "₹450.50". */
export function spokenMoney(minor: number, currency: string): string {
  const digits = currencyMinorDigits(currency);
  return new Intl.NumberFormat("en", { style: "currency", currency, minimumFractionDigits: digits }).format(minor / 10 ** digits);
}

/** A spoken amount in the minor unit, rounded to it (a model may send 450.5000001). */
export function toMinor(major: number, currency: string): number {
  return Math.round(major * 10 ** currencyMinorDigits(currency));
}
