import type { Intent, IntentItem, PAYMENT_MODES, ReadingContext } from "./intent.ts";

/**
 * The offline reader: plain-English shop phrasing → Intent, with no model and no network, so `npm run dev` works
 * without keys and a failed model call still gets an answer. It recognises a fixed set of phrasings (the table in
 * test/worker/whatsapp/intent-parser.test.ts) and answers `unknown` rather than guessing at anything else.
 */
export function parseIntent(text: string, context: ReadingContext): Intent {
  const message = tidy(text);
  return (
    balance(message) ??
    payment(message, context) ??
    invoice(message) ??
    reminder(message, context) ??
    invoiceList(message) ??
    findCustomer(message) ?? { kind: "unknown" }
  );
}

/** One space between words, no trailing punctuation, typographic apostrophes made plain. */
function tidy(text: string): string {
  return text
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/[?.!]+$/, "")
    .trim();
}

const SELF = /^(?:my|me|i|mine|myself)$/i;
/** A person as written: "Rahul", "Suresh Kumar", "me". */
const customerOf = (name: string): string | null => {
  const cleaned = name
    .replace(/^(?:customer|mr\.?|mrs\.?|ms\.?)\s+/i, "")
    .replace(/'s$/i, "")
    .trim();
  return SELF.test(cleaned) ? null : cleaned;
};

function balance(message: string): Intent | null {
  const owner =
    /^(?:what(?:'s| is)|whats|show(?: me)?|check|tell me|get)?\s*(.+?)(?:'s|s')? (?:current |outstanding )?(?:balance|dues?)$/i.exec(
      message,
    );
  if (owner?.[1] && !/\b(?:balance|dues?)\b/i.test(owner[1])) return { kind: "get_balance", customer: customerOf(owner[1]) };
  const of = /^(?:what(?:'s| is)|whats|show(?: me)?|check|tell me|get)?\s*(?:the )?(?:balance|dues?) (?:of|for) (.+)$/i.exec(message);
  if (of?.[1]) return { kind: "get_balance", customer: customerOf(of[1]) };
  const owes = /^how much (?:does|do) (.+?) owe(?: me)?$/i.exec(message);
  if (owes?.[1]) return { kind: "get_balance", customer: customerOf(owes[1]) };
  if (/^(?:balance|my balance|how much do i owe)$/i.test(message)) return { kind: "get_balance", customer: null };
  return null;
}

const AMOUNT = String.raw`(?:rs\.?|inr|₹|\$|usd|eur|€)?\s*(\d{1,3}(?:,\d{2,3})+|\d+)(?:\.(\d{1,3}))?(?:\s*(?:rs\.?|rupees?|inr|dollars?|\/-))?`;
const MODE = `(?:(?:by|via|in|through|using|with) )?(upi|cash|card|bank(?: transfer)?|gpay|google pay|phonepe|paytm|neft|imps|cheque|check)`;

/** "1,000" or "₹12.50" in the currency's minor unit; null when it has more decimals than the currency. */
export function minorAmount(whole: string, fraction: string | undefined, minorDigits: number): number | null {
  const digits = fraction ?? "";
  if (digits.length > minorDigits) return null;
  const value = Number(whole.replace(/,/g, "")) * 10 ** minorDigits + Number(digits.padEnd(minorDigits, "0") || "0");
  return Number.isSafeInteger(value) && value > 0 ? value : null;
}

function modeOf(word: string | undefined): (typeof PAYMENT_MODES)[number] {
  const mode = word?.toLowerCase() ?? "";
  if (["upi", "gpay", "google pay", "phonepe", "paytm"].includes(mode)) return "upi";
  if (mode === "cash" || mode === "card") return mode;
  if (mode.startsWith("bank") || mode === "neft" || mode === "imps") return "bank";
  // No mode said: "other" rather than a guess (the confirmation shows it).
  return "other";
}

function payment(message: string, context: ReadingContext): Intent | null {
  const paid = new RegExp(`^(.+?) (?:has )?(?:paid|gave|sent|payed)(?: me| us)? ${AMOUNT}(?: ${MODE})?$`, "i").exec(message);
  const received = new RegExp(
    `^(?:received|got|record(?: a)?(?: payment(?: of)?)?) ${AMOUNT}(?: ${MODE})? from (.+?)(?: ${MODE})?$`,
    "i",
  ).exec(message);
  if (paid?.[1] && paid[2]) {
    const amount = minorAmount(paid[2], paid[3], context.minorDigits);
    return amount ? { kind: "record_payment", customer: customerOf(paid[1]), amount, mode: modeOf(paid[4]) } : null;
  }
  if (received?.[1] && received[4]) {
    const amount = minorAmount(received[1], received[2], context.minorDigits);
    const mode = modeOf(received[3] ?? received[5]);
    return amount ? { kind: "record_payment", customer: customerOf(received[4]), amount, mode } : null;
  }
  return null;
}

const WORD_NUMBERS: Record<string, number> = {
  a: 1,
  an: 1,
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
  half: 0.5,
  "half a": 0.5,
  quarter: 0.25,
  "a quarter": 0.25,
  "a half": 0.5,
  "a dozen": 12,
  dozen: 12,
  "half a dozen": 6,
  "half dozen": 6,
};
const UNITS = [
  "kg",
  "kgs",
  "kilo",
  "kilos",
  "g",
  "gm",
  "grams",
  "l",
  "litre",
  "litres",
  "liter",
  "liters",
  "ml",
  "packet",
  "packets",
  "pack",
  "packs",
  "bottle",
  "bottles",
  "box",
  "boxes",
  "piece",
  "pieces",
  "pcs",
  "bag",
  "bags",
  "dozen",
];
const UNIT_NAMES: Record<string, string> = {
  kgs: "kg",
  kilo: "kg",
  kilos: "kg",
  gm: "g",
  grams: "g",
  litre: "l",
  litres: "l",
  liter: "l",
  liters: "l",
  packets: "packet",
  pack: "packet",
  packs: "packet",
  bottles: "bottle",
  boxes: "box",
  pieces: "piece",
  pcs: "piece",
  bags: "bag",
};

/** "2 kg rice", "a dozen eggs", "half kg sugar", "3 packets of biscuits", "rice 2 kg". */
export function parseItem(phrase: string): IntentItem | null {
  const words = Object.keys(WORD_NUMBERS)
    .sort((a, b) => b.length - a.length)
    .join("|");
  const unitAlternatives = UNITS.join("|");
  const leading = new RegExp(String.raw`^(\d+(?:\.\d{1,3})?|${words})\s*(?:(${unitAlternatives})\b)?\s*(?:of )?(.+)$`, "i").exec(
    phrase.trim(),
  );
  if (!leading?.[1] || !leading[3]) return null;
  const count = WORD_NUMBERS[leading[1].toLowerCase()] ?? Number(leading[1]);
  let unit = leading[2]?.toLowerCase() ?? null;
  let multiplier = 1;
  if (unit === "dozen") {
    multiplier = 12;
    unit = null;
  }
  const quantityMilli = Math.round(count * multiplier * 1000);
  if (!Number.isFinite(quantityMilli) || quantityMilli <= 0) return null;
  return { product: leading[3].trim(), quantityMilli, unit: unit ? (UNIT_NAMES[unit] ?? unit) : null };
}

function invoice(message: string): Intent | null {
  const match =
    /^(?:please )?(?:create|make|raise|generate|new|add)(?: an?| the)? (?:invoice|bill) (?:for|to) (.+?)\s*(?::|,|-|with|for) (.+)$/i.exec(
      message,
    ) ?? /^bill (.+?) (?:for) (.+)$/i.exec(message);
  if (!match?.[1] || !match[2]) return null;
  const items = match[2]
    .split(/,| and | & | plus /i)
    .map((part) => part.trim())
    .filter(Boolean)
    .map(parseItem);
  if (items.length === 0 || items.some((item) => item === null)) return null;
  return { kind: "create_invoice", customer: customerOf(match[1]), items: items as IntentItem[] };
}

function invoiceList(message: string): Intent | null {
  const match =
    /^(?:show|list|get|see|view)?\s*(?:me )?(?:the |my )?(?:(?:recent|latest|last)\s*(\d{1,2})?\s*)?(?:invoices|bills)(?: (?:for|of) (.+))?$/i.exec(
      message,
    );
  if (!match) return null;
  const limit = Math.min(20, Math.max(1, Number(match[1] ?? "5")));
  return { kind: "list_invoices", customer: match[2] ? customerOf(match[2]) : null, limit };
}

function findCustomer(message: string): Intent | null {
  const match = /^(?:find|search(?: for)?|look up|lookup|who is)(?: customer| the customer)? (.+)$/i.exec(message);
  return match?.[1] ? { kind: "find_customer", query: match[1].trim() } : null;
}

function reminder(message: string, context: ReadingContext): Intent | null {
  const match = new RegExp(
    `^remind (.+?) (?:to pay|about|of|for)(?: the)?(?: ${AMOUNT})?(?: dues?| balance| payment)?(?: (.+))?$`,
    "i",
  ).exec(message);
  if (!match?.[1]) return null;
  const amount = match[2] ? minorAmount(match[2], match[3], context.minorDigits) : null;
  if (match[2] && amount === null) return null;
  const dueDate = match[4] ? dateOf(match[4], context) : dateOf("tomorrow", context);
  if (!dueDate) return null;
  return { kind: "schedule_reminder", customer: customerOf(match[1]), amount, dueDate };
}

const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/** "by Friday", "tomorrow", "on 5 Dec", "in 3 days" → the tenant's local date, YYYY-MM-DD; null if not a date. */
export function dateOf(phrase: string, context: ReadingContext): string | null {
  const today = localToday(context);
  const words = phrase
    .toLowerCase()
    .replace(/^(?:by|on|before|this|next|coming)\s+/, "")
    .trim();
  if (words === "today") return iso(today);
  if (words === "tomorrow") return iso(addDays(today, 1));
  const inDays = /^in (\d{1,3}|a|one|two|three|four|five|six|seven) (day|days|week|weeks)$/.exec(words);
  if (inDays?.[1] && inDays[2]) {
    const count = WORD_NUMBERS[inDays[1]] ?? Number(inDays[1]);
    return iso(addDays(today, count * (inDays[2].startsWith("week") ? 7 : 1)));
  }
  if (words === "next week") return iso(addDays(today, 7));
  const weekday = WEEKDAYS.findIndex((day) => words === day || words === day.slice(0, 3));
  if (weekday >= 0) {
    const ahead = (weekday - today.getUTCDay() + 7) % 7 || 7;
    return iso(addDays(today, ahead));
  }
  const dayMonth = /^(\d{1,2})(?:st|nd|rd|th)? ([a-z]{3})[a-z]*$/.exec(words) ?? /^([a-z]{3})[a-z]* (\d{1,2})(?:st|nd|rd|th)?$/.exec(words);
  if (dayMonth?.[1] && dayMonth[2]) {
    const [day, month] = /^\d/.test(dayMonth[1]) ? [Number(dayMonth[1]), dayMonth[2]] : [Number(dayMonth[2]), dayMonth[1]];
    const monthIndex = MONTHS.indexOf(month);
    if (monthIndex < 0 || day < 1 || day > 31) return null;
    let date = new Date(Date.UTC(today.getUTCFullYear(), monthIndex, day));
    if (date.getUTCDate() !== day) return null;
    if (date < today) date = new Date(Date.UTC(today.getUTCFullYear() + 1, monthIndex, day));
    return iso(date);
  }
  return null;
}

/** Today's calendar date in the tenant's zone, as a UTC midnight (only its date parts are used). */
function localToday(context: ReadingContext): Date {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: context.timezone, year: "numeric", month: "2-digit", day: "2-digit" }).format(
    context.now,
  );
  return new Date(`${parts}T00:00:00Z`);
}

const addDays = (date: Date, days: number) => new Date(date.getTime() + days * 86_400_000);
const iso = (date: Date) => date.toISOString().slice(0, 10);
