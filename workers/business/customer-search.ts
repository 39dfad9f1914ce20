import { doubleMetaphone } from "double-metaphone";
import { distance } from "fastest-levenshtein";
import { z } from "zod";
import type { customers } from "../shared/db/schema.ts";
import { nameWords, phoneticKey } from "./phonetic.ts";

/**
 * Fuzzy customer search that survives speech recognition ("Raul" for Rahul, "Sures" for Suresh, "Sharma Rahul").
 * Two steps, so a query never reads a tenant's whole list:
 * 1. candidates from the FTS5 trigram index `customer_search` (migration 0010, kept in step by triggers): a name
 *    word as a substring, a name word's trigrams (one wrong letter still shares most of them), the Soundex codes of
 *    the words (trigram can't see "Raul"↔"Rahul": no shared trigram, one code R400), a phone by its last digits, an
 *    email; at most CANDIDATES rows, the best by bm25 when there are more;
 * 2. a re-rank of those rows here: per query word, its best pair among the customer's name and nickname words by
 *    edit distance (fastest-levenshtein) or sound (Double Metaphone, Soundex), so word order does not matter.
 */
export type Customer = typeof customers.$inferSelect;
export type MatchedField = "name" | "nickname" | "phone" | "email" | "phonetic";
export interface CustomerMatch {
  customer: Customer;
  /** 0…1: 1 is an exact match of everything said. */
  score: number;
  matchedOn: MatchedField[];
}

/** Rows fetched from the index per query at most; the re-rank is linear in this. */
const CANDIDATES = 200;
/** Below this a candidate is noise (it shared a trigram or a sound code with the query and nothing more). */
const MIN_SCORE = 0.45;
/** A word pair this similar counts as that field having matched. */
const FIELD_MATCH = 0.7;
/** What a word that only sounds right is worth: below an exact word, above most one-letter slips of short words. */
const SOUND_ALIKE = 0.8;

export async function searchCustomers(db: D1Database, tenantId: string, query: string, limit = 5): Promise<CustomerMatch[]> {
  const parsed = parseQuery(query);
  const statements = candidateStatements(db, tenantId, parsed);
  if (statements.length === 0) return [];
  const results = await db.batch<CandidateRow>(statements);
  const rows = new Map<string, CandidateRow>();
  for (const { results: found } of results) for (const row of found) rows.set(row.id, row);
  const matches: CustomerMatch[] = [];
  for (const row of rows.values()) {
    const match = rank(row, parsed);
    if (match.score >= MIN_SCORE) matches.push(match);
  }
  matches.sort((a, b) => b.score - a.score || a.customer.name.localeCompare(b.customer.name) || a.customer.id.localeCompare(b.customer.id));
  return matches.slice(0, limit);
}

interface ParsedQuery {
  words: QueryWord[];
  /** The digits of a query that is a phone number or part of one (`+91 98765-43210`), else null. */
  digits: string | null;
  /** A query with `@`, lower-cased, else null. */
  email: string | null;
}
interface QueryWord {
  text: string;
  sounds: Sounds;
}
interface Sounds {
  soundex: string;
  metaphone: [string, string];
}

function parseQuery(query: string): ParsedQuery {
  const text = query.trim().toLowerCase();
  const words = nameWords(text).map((word) => ({ text: word, sounds: soundsOf(word) }));
  const digits = text.replace(/\D/g, "");
  const isPhone = /^[\d\s+\-().]+$/.test(text) && digits.length >= 3;
  return { words, digits: isPhone ? digits : null, email: text.includes("@") ? text : null };
}

function soundsOf(word: string): Sounds {
  return { soundex: phoneticKey(word), metaphone: doubleMetaphone(word) };
}

// ── step 1: candidates from the index ───────────────────────────────────────────────────────────────────────────

type CandidateRow = Record<string, unknown> & { id: string };

/**
 * FTS5 query text is a language of its own (`"`, `*`, `NEAR`, `OR`, column filters): every piece of the user's text
 * goes in as a double-quoted string with its quotes doubled, which FTS5 reads as plain characters, nothing else.
 */
const quoted = (text: string) => `"${text.replaceAll('"', '""')}"`;

const SELECT = `SELECT c.* FROM customer_search s JOIN customers c ON c.rowid = s.rowid WHERE c.tenant_id = ?1 AND`;

function candidateStatements(db: D1Database, tenantId: string, query: ParsedQuery): D1PreparedStatement[] {
  const statements: D1PreparedStatement[] = [];
  const terms = new Set<string>();
  for (const { text, sounds } of query.words) {
    if (text.length >= 3) terms.add(`{name nickname} : ${quoted(text)}`);
    // A word said with one letter wrong keeps most of its trigrams: any of them makes a candidate, bm25 keeps the best.
    if (text.length >= 4) for (const trigram of trigramsOf(text)) terms.add(`{name nickname} : ${quoted(trigram)}`);
    // Soundex codes are four characters, so a phrase of one finds exactly the rows holding that code.
    if (sounds.soundex.length >= 3) terms.add(`phonetic : ${quoted(sounds.soundex)}`);
  }
  if (query.email && query.email.length >= 3) terms.add(`email : ${quoted(query.email)}`);
  if (terms.size > 0) {
    const match = [...terms].join(" OR ");
    statements.push(db.prepare(`${SELECT} customer_search MATCH ?2 ORDER BY s.rank LIMIT ${CANDIDATES}`).bind(tenantId, match));
  }
  if (query.digits) {
    // The trigram index answers GLOB itself; digits only, so nothing in the pattern is a wildcard.
    statements.push(db.prepare(`${SELECT} s.phone GLOB ?2 LIMIT ${CANDIDATES}`).bind(tenantId, `*${query.digits}`));
  }
  return statements;
}

function trigramsOf(word: string): string[] {
  const letters = [...word];
  return letters.slice(0, -2).map((_, i) => letters.slice(i, i + 3).join(""));
}

// ── step 2: the re-rank ─────────────────────────────────────────────────────────────────────────────────────────

function rank(row: CandidateRow, query: ParsedQuery): CustomerMatch {
  const customer = rowSchema.parse(row);
  const matchedOn = new Set<MatchedField>();
  let score = 0;
  if (query.words.length > 0) {
    const names = [
      ...nameWords(customer.name).map((text) => ({ text, field: "name" as const })),
      ...nameWords(customer.nickname ?? "").map((text) => ({ text, field: "nickname" as const })),
    ];
    let total = 0;
    const covered = new Set<string>();
    for (const word of query.words) {
      let best = { similarity: 0, field: "name" as MatchedField, bySound: false, text: "" };
      for (const name of names) {
        const pair = wordSimilarity(word, name.text);
        if (pair.similarity > best.similarity) best = { ...pair, field: name.field, text: name.text };
      }
      total += best.similarity;
      if (best.similarity >= FIELD_MATCH) {
        matchedOn.add(best.field);
        if (best.bySound) matchedOn.add("phonetic");
        covered.add(best.text);
      }
    }
    // Mostly how well each word said was found; a little for how much of the customer's name was said.
    const nameCount = new Set(nameWords(customer.name)).size || 1;
    const coverage = Math.min(1, [...covered].filter((text) => nameWords(customer.name).includes(text)).length / nameCount);
    score = 0.9 * (total / query.words.length) + 0.1 * coverage;
  }
  if (query.digits && customer.phone) {
    const phoneDigits = customer.phone.replace(/\D/g, "");
    if (phoneDigits.endsWith(query.digits)) {
      matchedOn.add("phone");
      score = Math.max(score, 0.7 + (0.3 * query.digits.length) / phoneDigits.length);
    }
  }
  if (query.email && customer.email) {
    const email = customer.email.toLowerCase();
    if (email.includes(query.email)) {
      matchedOn.add("email");
      score = Math.max(score, 0.7 + (0.3 * query.email.length) / email.length);
    }
  }
  return { customer, score: Math.round(score * 1000) / 1000, matchedOn: [...matchedOn] };
}

/**
 * 1 for the same word; a prefix said ("Sures" of Suresh) close to 1; else 1 − edit distance ÷ the longer length,
 * raised to SOUND_ALIKE when the two sound alike.
 */
function wordSimilarity(word: QueryWord, name: string): { similarity: number; bySound: boolean } {
  if (word.text === name) return { similarity: 1, bySound: false };
  const longer = Math.max(word.text.length, name.length);
  let similarity = 1 - distance(word.text, name) / longer;
  if (word.text.length >= 3 && name.startsWith(word.text)) similarity = Math.max(similarity, 0.85 + (0.1 * word.text.length) / name.length);
  if (soundsAlike(word.sounds, name)) return { similarity: Math.max(similarity, SOUND_ALIKE), bySound: true };
  return { similarity, bySound: false };
}

function soundsAlike(sounds: Sounds, name: string): boolean {
  if (phoneticKey(name) === sounds.soundex) return true;
  const [primary, secondary] = doubleMetaphone(name);
  return [primary, secondary].some((code) => code !== "" && sounds.metaphone.includes(code));
}

/** D1 answers in column names; the row is read back into the schema's shape (and checked: it crosses a boundary). */
const rowSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    name: z.string(),
    nickname: z.string().nullable(),
    phone: z.string().nullable(),
    email: z.string().nullable(),
    language: z.string().nullable(),
    notes: z.string().nullable(),
    balance: z.number().int(),
    phonetic: z.string(),
    created_at: z.number(),
    updated_at: z.number(),
  })
  .transform(
    ({ tenant_id, created_at, updated_at, ...rest }): Customer => ({
      ...rest,
      tenantId: tenant_id,
      createdAt: created_at,
      updatedAt: updated_at,
    }),
  );
