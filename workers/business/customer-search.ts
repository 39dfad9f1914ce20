import { doubleMetaphone } from "double-metaphone";
import { distance } from "fastest-levenshtein";
import { z } from "zod";
import type { customers } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { nameWords, phoneticKey } from "./phonetic.ts";

/**
 * Fuzzy customer search that survives speech recognition ("Raul" for Rahul, "Sures" for Suresh, "Sharma Rahul").
 * Two steps, so a query never reads a tenant's whole list:
 * 1. candidates from the FTS5 trigram index `customer_search` (migration 0010, kept in step by triggers), at most
 *    CANDIDATES rows a query: first narrowly (every word said, as a substring of the name or nickname or by its
 *    Soundex code, since trigram can't see "Raul"↔"Rahul": no shared trigram, one code R400; a phone by its last
 *    digits; an email), and only if that finds too few, widely (a trigram of every word, then of any word, best by
 *    bm25);
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

export async function searchCustomers(scope: TenantScope, query: string, limit = 5): Promise<CustomerMatch[]> {
  const { d1: db, tenantId } = scope;
  const parsed = parseQuery(query);
  // Every candidate ranked once, by id (a row both passes find is the same customer); null: below MIN_SCORE.
  const ranked = new Map<string, Ranked | null>();
  await collect(db, strictStatements(db, tenantId, parsed), parsed, ranked);
  // Widen only when the narrow pass found too few: a wrong letter the sound code doesn't forgive ("Cumar"), then a
  // word said that isn't in the name at all. Each wider pass ranks more rows by bm25, the costliest work here.
  for (const every of parsed.words.length > 1 ? [true, false] : [false]) {
    if (best(ranked).length >= limit) break;
    await collect(db, wideStatements(db, tenantId, parsed, every), parsed, ranked);
  }
  // Only the answer is read into the customer's shape: up to CANDIDATES rows are ranked, `limit` returned.
  return best(ranked)
    .slice(0, limit)
    .map(({ row, score, matchedOn }) => ({ customer: rowSchema.parse(row), score, matchedOn }));
}

interface Ranked {
  row: CandidateRow;
  name: string;
  score: number;
  matchedOn: MatchedField[];
}

async function collect(db: D1Database, statements: D1PreparedStatement[], query: ParsedQuery, ranked: Map<string, Ranked | null>) {
  if (statements.length === 0) return;
  for (const { results } of await db.batch<CandidateRow>(statements))
    for (const row of results) {
      if (ranked.has(row.id)) continue;
      const match = rank(row, query);
      ranked.set(row.id, match.score >= MIN_SCORE ? match : null);
    }
}

function best(ranked: Map<string, Ranked | null>): Ranked[] {
  return [...ranked.values()]
    .filter((match) => match !== null)
    .sort((a, b) => b.score - a.score || a.name.localeCompare(b.name) || a.row.id.localeCompare(b.row.id));
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
  /** Similarity to each name word already compared: a shop's customers share their first and last names. */
  compared: Map<string, Similarity>;
}
interface Similarity {
  similarity: number;
  bySound: boolean;
}
interface Sounds {
  soundex: string;
  metaphone: [string, string];
}

function parseQuery(query: string): ParsedQuery {
  const text = query.trim().toLowerCase();
  const digits = text.replace(/\D/g, "");
  const isPhone = /^[\d\s+\-().]+$/.test(text) && digits.length >= 3;
  // Someone who types an @ is giving an email: its words are not a name to sound out.
  const isEmail = text.includes("@");
  const words = isEmail ? [] : nameWords(text).map((word) => ({ text: word, sounds: soundsOf(word), compared: new Map() }));
  return { words, digits: isPhone ? digits : null, email: isEmail ? text : null };
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

/**
 * The narrow pass, one D1 round trip: rows where EVERY word said is in the name or nickname, as written or by its
 * sound code (an AND of posting lists: few rows, no ranking needed); a phone by its last digits; an email.
 */
function strictStatements(db: D1Database, tenantId: string, query: ParsedQuery): D1PreparedStatement[] {
  const statements: D1PreparedStatement[] = [];
  const groups = query.words.flatMap(({ text, sounds }) => {
    const terms = [
      ...(text.length >= 3 ? [`{name nickname} : ${quoted(text)}`] : []),
      // Soundex codes are four characters, so a phrase of one finds exactly the rows holding that code.
      ...(sounds.soundex.length >= 3 ? [`phonetic : ${quoted(sounds.soundex)}`] : []),
    ];
    return terms.length > 0 ? [`(${terms.join(" OR ")})`] : [];
  });
  if (groups.length > 0) statements.push(candidates(db, tenantId, groups.join(" AND ")));
  if (query.email) {
    // Up to the @: every email shares its domain's trigrams, which would only slow the phrase down.
    const at = query.email.indexOf("@");
    const phrase = at >= 2 ? query.email.slice(0, at + 1) : query.email;
    if (phrase.length >= 3) statements.push(candidates(db, tenantId, `email : ${quoted(phrase)}`));
  }
  if (query.digits) {
    // The trigram index answers GLOB itself; digits only, so nothing in the pattern is a wildcard.
    statements.push(db.prepare(`${SELECT} s.phone GLOB ?2 LIMIT ${CANDIDATES}`).bind(tenantId, `*${query.digits}`));
  }
  return statements;
}

/**
 * The wide passes: rows holding a word said, a trigram of it or its sound code — for `every` word (an AND: far fewer
 * rows to rank) or for any — the best CANDIDATES by bm25.
 */
function wideStatements(db: D1Database, tenantId: string, query: ParsedQuery, every: boolean): D1PreparedStatement[] {
  const groups = query.words.flatMap(({ text, sounds }) => {
    const terms = new Set<string>();
    if (text.length >= 3) terms.add(`{name nickname} : ${quoted(text)}`);
    // A word with one letter wrong keeps most of its trigrams.
    if (text.length >= 4) for (const trigram of trigramsOf(text)) terms.add(`{name nickname} : ${quoted(trigram)}`);
    if (sounds.soundex.length >= 3) terms.add(`phonetic : ${quoted(sounds.soundex)}`);
    return terms.size > 0 ? [`(${[...terms].join(" OR ")})`] : [];
  });
  return groups.length === 0 ? [] : [candidates(db, tenantId, groups.join(every ? " AND " : " OR "), "ORDER BY s.rank")];
}

function candidates(db: D1Database, tenantId: string, match: string, order = ""): D1PreparedStatement {
  return db.prepare(`${SELECT} customer_search MATCH ?2 ${order} LIMIT ${CANDIDATES}`).bind(tenantId, match);
}

function trigramsOf(word: string): string[] {
  const letters = [...word];
  return letters.slice(0, -2).map((_, i) => letters.slice(i, i + 3).join(""));
}

// ── step 2: the re-rank ─────────────────────────────────────────────────────────────────────────────────────────

/** The fields a match is judged on, read without the full parse (which only the answer's rows get). */
const text = (value: unknown) => (typeof value === "string" ? value : null);

function rank(row: CandidateRow, query: ParsedQuery): Ranked {
  const customer = { name: text(row.name) ?? "", nickname: text(row.nickname), phone: text(row.phone), email: text(row.email) };
  const matchedOn = new Set<MatchedField>();
  let score = 0;
  if (query.words.length > 0) {
    const nameOnly = nameWords(customer.name);
    const names = [
      ...nameOnly.map((text) => ({ text, field: "name" as const })),
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
    const nameCount = new Set(nameOnly).size || 1;
    const coverage = Math.min(1, [...covered].filter((text) => nameOnly.includes(text)).length / nameCount);
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
  return { row, name: customer.name, score: Math.round(score * 1000) / 1000, matchedOn: [...matchedOn] };
}

/**
 * 1 for the same word; a prefix said ("Sures" of Suresh) close to 1; else 1 − edit distance ÷ the longer length,
 * raised to SOUND_ALIKE when the two sound alike.
 */
function wordSimilarity(word: QueryWord, name: string): Similarity {
  let known = word.compared.get(name);
  if (!known) {
    known = compare(word, name);
    word.compared.set(name, known);
  }
  return known;
}

function compare(word: QueryWord, name: string): Similarity {
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
