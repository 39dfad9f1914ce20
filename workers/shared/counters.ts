/**
 * Process-local counters (per isolate). The metrics issue aggregates them across isolates; until then they are
 * readable here and in tests, and every increment is also a structured log line at its call site.
 */
const counters = new Map<string, number>();

const keyOf = (name: string, labels: Record<string, string>) =>
  `${name}{${Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")}}`;

export function increment(name: string, labels: Record<string, string> = {}, by = 1): void {
  const key = keyOf(name, labels);
  counters.set(key, (counters.get(key) ?? 0) + by);
}

export function counterValue(name: string, labels: Record<string, string> = {}): number {
  return counters.get(keyOf(name, labels)) ?? 0;
}
