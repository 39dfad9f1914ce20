import { z } from "zod";

/**
 * Masks personal data in free text (transcript lines, WhatsApp bodies, exports) when a tenant's `piiRedaction` is
 * "mask": payment card numbers (13–19 digits, Luhn-valid only, last 4 kept), national ids (Indian Aadhaar with its
 * Verhoeff check, Indian PAN, US SSN), emails and phone numbers (8–15 digits). Runs per line or per message, never
 * per audio frame. A masked value reads as a bracketed tag so a reader still sees what kind of thing was said.
 *
 * Hand-written patterns: no maintained npm package covers this set (card, Aadhaar, PAN, SSN, email, phone) in one
 * place, and the two checksums are a dozen lines; libphonenumber-js would sharpen phone detection if it is ever added.
 */

export const piiRedactionSchema = z.enum(["off", "mask"]);
export type PiiRedaction = z.infer<typeof piiRedactionSchema>;

/** What a masked DTMF digit reads as (in transcript lines, call events and live events). */
export const MASKED_DIGIT = "•";

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
const PAN = /\b[A-Z]{5}\d{4}[A-Z]\b/g;
const SSN = /\b\d{3}-\d{2}-\d{4}\b/g;
/** 13–19 digits, single spaces or dashes between them (as people write and speech-to-text prints card numbers). */
const CARD = /(?<![\d.,])\d(?:[ -]?\d){12,18}(?![\d.,]\d)/g;
/** Aadhaar: 12 digits, plain or in groups of four; the first digit is never 0 or 1. */
const AADHAAR = /(?<![\d.,])[2-9]\d{3}[ -]?\d{4}[ -]?\d{4}(?![\d.,]\d)/g;
/**
 * A phone number: E.164 (+ then digits) or a local form with spaces, dashes, dots or parentheses between digit
 * groups. Commas are not separators, so amounts such as 1,250 or 12,50,000 never read as phones; 8 digits at least.
 */
const PHONE = /(?<![\w.,])(?:\+|\(?)\d(?:[ .-]?\(?\d\)?){6,16}(?![\d.,]\d)/g;

/** An ISO date (2026-12-03) has 8 digits too, and is no phone. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

const digitsOf = (text: string) => text.replace(/\D/g, "");

/** The Luhn (mod 10) check every payment card number carries. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let index = 0; index < digits.length; index++) {
    let digit = digits.charCodeAt(digits.length - 1 - index) - 48;
    if (index % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return digits.length > 0 && sum % 10 === 0;
}

// Verhoeff's dihedral-group tables (the check digit of an Aadhaar number).
const VERHOEFF_D = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
  [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
  [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
  [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
  [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
  [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
  [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
  [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
  [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
  [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
  [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
  [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
  [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
  [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
  [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

export function verhoeffValid(digits: string): boolean {
  let check = 0;
  for (let index = 0; index < digits.length; index++) {
    const digit = digits.charCodeAt(digits.length - 1 - index) - 48;
    check = VERHOEFF_D[check]![VERHOEFF_P[index % 8]![digit]!]!;
  }
  return digits.length > 0 && check === 0;
}

/** The text with every recognised piece of personal data replaced by a tag. */
export function maskPii(text: string): string {
  return text
    .replace(EMAIL, "[email]")
    .replace(PAN, "[id]")
    .replace(SSN, "[id]")
    .replace(CARD, (match) => {
      const digits = digitsOf(match);
      return luhnValid(digits) ? `[card ending ${digits.slice(-4)}]` : match;
    })
    .replace(AADHAAR, (match) => (verhoeffValid(digitsOf(match)) ? "[id]" : match))
    .replace(PHONE, (match) => {
      const count = digitsOf(match).length;
      return count >= 8 && count <= 15 && !ISO_DATE.test(match) ? "[phone]" : match;
    });
}

/** The masker a tenant's setting asks for: the identity when redaction is off. */
export function maskerFor(mode: PiiRedaction): (text: string) => string {
  return mode === "mask" ? maskPii : (text) => text;
}
