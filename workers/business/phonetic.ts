import { soundex } from "soundex-code";

/**
 * The sound codes of a customer's name and nickname, one Soundex code per word, de-duplicated and space separated
 * (stored in `customers.phonetic`). Soundex rather than Metaphone for the index key because it ignores the silent
 * letters speech recognition drops or adds ("Raul" and "Rahul" are both R400; Metaphone gives RL and RHL).
 */
export function phoneticKey(...names: Array<string | null | undefined>): string {
  const codes = new Set<string>();
  // Soundex knows only Latin letters; a word in another script is its own key (matched exactly).
  for (const word of nameWords(names.filter(Boolean).join(" "))) codes.add(/^[a-z]+$/.test(word) ? soundex(word) : word);
  return [...codes].join(" ");
}

/** Lower-case words of letters (any script), so punctuation and digits never reach the phonetic code. */
export function nameWords(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{M}]+/gu) ?? [];
}
