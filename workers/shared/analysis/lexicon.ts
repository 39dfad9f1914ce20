/**
 * Lexicon sentiment, deterministic and offline: each word's valence from an AFINN-style list (−5…5), a negator
 * ("not", "never", …) up to two words before flipping it. A text's score is the mean valence of the words that carry
 * one, divided by 5, so it lies in −1…1; `RunningSentiment` keeps the same sums over a whole conversation.
 */

// A small hand-written AFINN-165 subset until the `sentiment` package (its full AFINN-165 list) is added: swap this
// map for that package's labels and nothing else changes.
const LEXICON: Readonly<Record<string, number>> = {
  abandon: -2,
  angry: -3,
  annoyed: -2,
  awesome: 4,
  awful: -3,
  bad: -3,
  best: 3,
  better: 2,
  broken: -1,
  cancel: -1,
  charged: -1,
  cheated: -3,
  complain: -2,
  complaint: -2,
  confused: -2,
  delay: -1,
  delayed: -1,
  disappointed: -2,
  disappointing: -2,
  excellent: 3,
  fail: -2,
  failed: -2,
  fantastic: 4,
  fine: 2,
  frustrated: -2,
  frustrating: -2,
  glad: 3,
  good: 3,
  great: 3,
  happy: 3,
  hate: -3,
  helpful: 2,
  horrible: -3,
  issue: -1,
  late: -1,
  like: 2,
  love: 3,
  lost: -3,
  mistake: -2,
  nice: 3,
  perfect: 3,
  pleased: 3,
  poor: -2,
  problem: -2,
  refund: -1,
  ridiculous: -3,
  sad: -2,
  satisfied: 2,
  slow: -2,
  sorry: -1,
  terrible: -3,
  thank: 2,
  thanks: 2,
  unhappy: -2,
  upset: -2,
  useless: -2,
  waiting: -1,
  wonderful: 4,
  worse: -3,
  worst: -3,
  wrong: -2,
};

const NEGATORS = new Set(["not", "no", "never", "dont", "don't", "isnt", "isn't", "wasnt", "wasn't", "cannot", "cant", "can't"]);
/** How many words after a negator it still flips. */
const NEGATION_REACH = 2;

export type SentimentLabel = "positive" | "neutral" | "negative";

export interface Sentiment {
  score: number;
  label: SentimentLabel;
}

/** The words of a text, lower case, apostrophes kept ("don't"). */
export function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? [];
}

/** The valence sum of a text and how many of its words carry one. */
export function valenceOf(text: string): { sum: number; hits: number } {
  let sum = 0;
  let hits = 0;
  let negatedFor = 0;
  for (const word of wordsOf(text)) {
    if (NEGATORS.has(word)) {
      negatedFor = NEGATION_REACH;
      continue;
    }
    const value = LEXICON[word];
    if (value !== undefined) {
      sum += negatedFor > 0 ? -value : value;
      hits++;
      negatedFor = 0;
    } else if (negatedFor > 0) negatedFor--;
  }
  return { sum, hits };
}

/** −1…1 from a valence sum, to two decimals; no sentiment-bearing word is neutral 0. */
export function sentimentFrom(sum: number, hits: number): Sentiment {
  const score = hits === 0 ? 0 : Math.round((sum / (5 * hits)) * 100) / 100;
  return { score, label: labelOf(score) };
}

export function labelOf(score: number): SentimentLabel {
  if (score >= 0.2) return "positive";
  if (score <= -0.2) return "negative";
  return "neutral";
}

export function sentimentOf(text: string): Sentiment {
  const { sum, hits } = valenceOf(text);
  return sentimentFrom(sum, hits);
}

/** A conversation's sentiment so far: the sums over every caller turn, so a turn adds to it rather than replacing it. */
export class RunningSentiment {
  private sum = 0;
  private hits = 0;
  turns = 0;

  add(text: string): Sentiment {
    const turn = valenceOf(text);
    this.sum += turn.sum;
    this.hits += turn.hits;
    this.turns++;
    return sentimentFrom(turn.sum, turn.hits);
  }

  get current(): Sentiment {
    return sentimentFrom(this.sum, this.hits);
  }
}
