import { SERIES, type SeriesSpec } from "../../../workers/shared/observability/series.ts";

/**
 * Just enough PromQL reading to check that alert rules and dashboard queries name only the series and label keys
 * `/metrics` exposes: which series an expression selects (with the label keys of its matchers), and which labels it
 * groups by. Not a parser: it relies on PromQL's lexical shape (functions are followed by `(`, matchers sit in
 * `{}`, grouping labels in `by (…)` and friends), which is all these files use.
 */
export interface Selector {
  name: string;
  matcherLabels: string[];
}

export interface ExpressionUse {
  selectors: Selector[];
  groupingLabels: string[];
}

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"]);
const GROUPING = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;
const IDENTIFIER = /(?<![\w.$])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?/g;
const MATCHER_LABEL = /([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g;
const HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count"];

/** Prometheus's own per-target series, which the dead man's switch reads. */
const PROMETHEUS_SERIES: Record<string, readonly string[]> = { up: ["job", "instance"] };

export function readExpression(expr: string): ExpressionUse {
  // Strings first (a matcher's value may hold anything), then ranges and subqueries (`[5m]`, `[1h:1m]`).
  const text = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, "");
  const groupingLabels = [...text.matchAll(GROUPING)].flatMap((match) => splitLabels(match[1] ?? ""));
  const selectors: Selector[] = [];
  for (const match of text.replace(GROUPING, " ").matchAll(IDENTIFIER)) {
    const [, name, matchers, call] = match;
    if (!name || call || KEYWORDS.has(name)) continue;
    selectors.push({ name, matcherLabels: [...(matchers ?? "").matchAll(MATCHER_LABEL)].map((m) => m[1]!) });
  }
  return { selectors, groupingLabels };
}

function splitLabels(list: string): string[] {
  return list
    .split(",")
    .map((label) => label.trim())
    .filter(Boolean);
}

/** The label keys a scraped series name carries, or null when it is not one `/metrics` (or Prometheus) exposes. */
export function labelsOf(name: string): readonly string[] | null {
  const own = PROMETHEUS_SERIES[name];
  if (own) return own;
  const specs: Record<string, SeriesSpec> = SERIES;
  const spec = specs[name];
  if (spec) return spec.kind === "histogram" ? null : spec.labels;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    const base = specs[name.slice(0, -suffix.length)];
    if (name.endsWith(suffix) && base?.kind === "histogram") return suffix === "_bucket" ? [...base.labels, "le"] : base.labels;
  }
  return null;
}

/**
 * What is wrong with an expression: a series `/metrics` does not expose, a matcher on a label the series lacks, a
 * grouping (or a template's `$labels.x` / legend's `{{x}}`) on a label none of its series has.
 */
export function problemsOf(expr: string, outputLabels: string[] = []): string[] {
  const { selectors, groupingLabels } = readExpression(expr);
  const problems: string[] = [];
  const known = new Set<string>();
  for (const { name, matcherLabels } of selectors) {
    const labels = labelsOf(name);
    if (!labels) {
      problems.push(`unknown series ${name}`);
      continue;
    }
    for (const label of labels) known.add(label);
    for (const label of matcherLabels) if (!labels.includes(label)) problems.push(`${name} has no label ${label}`);
  }
  for (const label of [...groupingLabels, ...outputLabels]) {
    if (!known.has(label)) problems.push(`no series of the expression has label ${label}`);
  }
  return problems;
}
