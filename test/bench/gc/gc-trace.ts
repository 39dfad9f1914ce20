/**
 * `load.bench.ts --gc`: V8's garbage collections in each target's isolate, and how many of the run's late frames were
 * in flight while one paused the thread. workerd runs behind `workerd-gc.sh` with `--trace-gc-nvp`; the trace's lines
 * arrive stamped with the time each collection ended.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

export interface GcPause {
  /** Epoch ms the collection ended (its line's arrival). */
  endAt: number;
  pauseMs: number;
  kind: "scavenge" | "mark-compact" | "other";
  /** A mark-compact's marking, ms. */
  markMs: number;
  /** Live heap after the collection, MB. */
  liveMb: number;
}

/** Routes the next workerd started (by wrangler, through miniflare) through the tracing wrapper, logging to `logPath`. */
export function traceGcTo(logPath: string): void {
  const fromMiniflare = createRequire(createRequire(import.meta.url).resolve("miniflare"));
  process.env.WORKERD_GC_BINARY = (fromMiniflare("workerd") as { default: string }).default;
  process.env.WORKERD_GC_LOG = logPath;
  process.env.MINIFLARE_WORKERD_PATH = join(import.meta.dirname, "workerd-gc.sh");
  process.env.MINIFLARE_WORKERD_V8_FLAGS = "--trace-gc-nvp";
}

/** The collections between `from` and `to` (epoch ms) of the isolate that paused longest: the one running the calls. */
export function readGcPauses(logPath: string, from: number, to: number): GcPause[] {
  let text = "";
  try {
    text = readFileSync(logPath, "utf8");
  } catch {
    return [];
  }
  const byIsolate = new Map<string, GcPause[]>();
  for (const line of text.split("\n")) {
    const match = /^(\d+) \[([^\]]+)\]\s+[\d.]+ ms: GC: (\{.*\})$/.exec(line);
    if (!match) continue;
    const endAt = Number(match[1]);
    if (endAt < from || endAt > to) continue;
    let trace: { pause: number; gc: string; mark?: number; end_object_size: number };
    try {
      trace = JSON.parse(match[3]!);
    } catch {
      continue; // a line cut short as workerd stopped
    }
    const kind = trace.gc === "s" ? "scavenge" : trace.gc === "mc" ? "mark-compact" : "other";
    const pauses = byIsolate.get(match[2]!) ?? [];
    pauses.push({ endAt, pauseMs: trace.pause, kind, markMs: trace.mark ?? 0, liveMb: trace.end_object_size / 1024 / 1024 });
    byIsolate.set(match[2]!, pauses);
  }
  const paused = (pauses: GcPause[]) => pauses.reduce((sum, pause) => sum + pause.pauseMs, 0);
  return [...byIsolate.values()].sort((a, b) => paused(b) - paused(a))[0] ?? [];
}

/**
 * One table row: collections by kind (count, total, longest), a mark-compact's marking and the live heap after it,
 * and the share of frames later than `p99Ms` that were in flight while a pause of 5 ms or more held the thread.
 */
export function gcRow(label: string, pauses: GcPause[], frames: Array<[sentAt: number, lateMs: number]>, p99Ms: number): string[] {
  const of = (kind: GcPause["kind"]) => pauses.filter((pause) => pause.kind === kind);
  const described = (list: GcPause[]) =>
    `${list.length} / ${list.reduce((sum, pause) => sum + pause.pauseMs, 0).toFixed(0)} / ${Math.max(0, ...list.map((pause) => pause.pauseMs)).toFixed(1)}`;
  const fulls = of("mark-compact");
  const mean = (values: number[]) => (values.length ? values.reduce((sum, value) => sum + value, 0) / values.length : 0);
  const stalls = pauses.filter((pause) => pause.pauseMs >= 5).map((pause) => [pause.endAt - pause.pauseMs, pause.endAt] as const);
  const late = frames.filter(([, lateMs]) => lateMs > p99Ms);
  const held = late.filter(([sentAt, lateMs]) => stalls.some(([start, end]) => start < sentAt + lateMs && end > sentAt));
  return [
    label,
    described(of("scavenge")),
    described(fulls),
    mean(fulls.map((pause) => pause.markMs)).toFixed(1),
    mean(fulls.map((pause) => pause.liveMb)).toFixed(1),
    `${held.length} of ${late.length}`,
  ];
}
