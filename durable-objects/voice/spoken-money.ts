import { currencyMinorDigits } from "../../workers/shared/tenant-settings.ts";

/**
 * Money as the agent says it: the engine keeps integers in the currency's minor unit (45050 paise), people hear the
 * major unit ("₹450.50"). The other way, what the agent heard, is the engine's exact `parseAmount`.
 */

/** An amount as the agent should say it, e.g. "₹450.50". */
export function spokenMoney(minor: number, currency: string): string {
  const digits = currencyMinorDigits(currency);
  return new Intl.NumberFormat("en", { style: "currency", currency, minimumFractionDigits: digits }).format(minor / 10 ** digits);
}
