import { RunningSentiment, valenceOf, wordsOf } from "./lexicon.ts";
import type { AnalysisLine, AnalysisResult } from "./result.ts";

/**
 * The offline engine: deterministic, no network. Sentiment is the caller's, by lexicon; the summary is the
 * conversation's most telling sentences in their order; topics are its most frequent content words; action items are
 * sentences that promise or ask ("will", "please", "remind", "send", "call back"); insights are counts.
 */

const SUMMARY_SENTENCES = 3;
const TOPICS = 5;
const ACTION_ITEMS = 10;
const ACTION = /\b(will|please|remind|send|call (?:you |me )?back)\b/i;
const NEGATIVE_ESCALATION = -0.5;
const ASKED_FOR_PERSON = /\b(human|manager|supervisor|real person|someone else)\b/i;

// Words that say nothing about what a call was about.
const STOP_WORDS = new Set(
  (
    "a about after again all also am an and any are as at back be because been before being but by can could did do does " +
    "doing don't for from get got had has have having he her here him his how i i'm if in into is it it's its just " +
    "let me more my no not now of off on once only or our out over please so some than that that's the their them " +
    "then there these they this those to too up us very was we were what when where which who why will with would " +
    "yes you your you're okay ok hello hi thank thanks bye goodbye sure right well yeah want need like know"
  ).split(" "),
);

export function analyseLocally(lines: AnalysisLine[]): AnalysisResult {
  const caller = lines.filter((line) => line.role === "caller");
  const agent = lines.filter((line) => line.role === "agent");
  const supervisor = lines.filter((line) => line.role === "supervisor");
  const running = new RunningSentiment();
  for (const line of caller) running.add(line.text);
  const sentiment = running.current;
  const sentences = lines.flatMap((line) => sentencesOf(line.text).map((text) => ({ role: line.role, text })));
  const topics = topicsOf(sentences.map((sentence) => sentence.text));
  const callerWords = caller.reduce((total, line) => total + wordsOf(line.text).length, 0);
  const agentWords = agent.reduce((total, line) => total + wordsOf(line.text).length, 0);
  const talkRatio = callerWords + agentWords === 0 ? 0 : Math.round((callerWords / (callerWords + agentWords)) * 100) / 100;
  const askedForPerson = caller.find((line) => ASKED_FOR_PERSON.test(line.text));
  return {
    summary: summaryOf(
      sentences.map((sentence) => sentence.text),
      topics,
    ),
    sentiment,
    insights: [
      `${caller.length} caller turns, ${agent.length} agent turns${supervisor.length ? `, ${supervisor.length} supervisor turns` : ""}`,
      `caller talk ratio ${talkRatio}`,
      `${lines.filter((line) => line.interrupted).length} agent replies interrupted`,
    ],
    actionItems: sentences
      .filter((sentence) => ACTION.test(sentence.text))
      .slice(0, ACTION_ITEMS)
      .map((sentence) => `${sentence.role}: ${sentence.text}`),
    topics,
    escalation: askedForPerson
      ? { recommended: true, reason: "the caller asked for a person" }
      : sentiment.score <= NEGATIVE_ESCALATION
        ? { recommended: true, reason: "the caller was very unhappy" }
        : { recommended: false, reason: null },
  };
}

function sentencesOf(text: string): string[] {
  return (text.match(/[^.!?]+[.!?]*/g) ?? []).map((sentence) => sentence.trim()).filter((sentence) => wordsOf(sentence).length > 0);
}

const contentWords = (text: string) => wordsOf(text).filter((word) => word.length > 2 && !STOP_WORDS.has(word));

/** The most frequent content words, feelings aside (they are the sentiment's); ties go to the word said first. */
function topicsOf(sentences: string[]): string[] {
  const counts = new Map<string, number>();
  for (const word of sentences.flatMap(contentWords)) if (valenceOf(word).hits === 0) counts.set(word, (counts.get(word) ?? 0) + 1);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, TOPICS)
    .map(([word]) => word);
}

/**
 * The sentences scoring highest by how many topic words they hold plus how much feeling they carry, kept in the
 * order they were said; ties go to the earlier sentence.
 */
function summaryOf(sentences: string[], topics: string[]): string {
  const topicSet = new Set(topics);
  const scored = sentences.map((text, index) => ({
    text,
    index,
    score: contentWords(text).filter((word) => topicSet.has(word)).length + Math.abs(valenceOf(text).sum) / 5,
  }));
  return scored
    .sort((a, b) => b.score - a.score || a.index - b.index)
    .slice(0, SUMMARY_SENTENCES)
    .sort((a, b) => a.index - b.index)
    .map((sentence) => sentence.text)
    .join(" ");
}
