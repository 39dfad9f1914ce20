/**
 * `load.bench.ts --perf`: what workerd's thread was doing while each late agent chunk waited. `perf record` samples
 * the serving workerd's CPU (V8's perf map names the JavaScript) and records every time its thread leaves the CPU;
 * each chunk later than LATE_MS is put down to what took most of its wait. Off-CPU waits (the disk, idle, preempted)
 * and cppgc's sweep of workerd's own C++ objects are what V8's GC trace (`--gc`) cannot see.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { preciseNow } from "../../simulators/providers/recorder.ts";

/** A chunk this late (ms) counts as late here: above the bare relay's steady p99 at 50 calls in most runs. */
export const LATE_MS = 5;
const SAMPLES_PER_SECOND = 1999;
const SAMPLE_MS = 1000 / SAMPLES_PER_SECOND;
/** Samples of one kind closer than this (ms) are one stretch of it. */
const STRETCH_GAP_MS = 1.5;

export const HOLDS = ["sweep", "gc", "cpu", "fsync", "idle", "off-cpu"] as const;
export type Hold = (typeof HOLDS)[number];

/** What the report calls each kind of hold. */
export const HOLD_NAMES: Record<Hold, string> = {
  sweep: "cppgc sweep",
  gc: "V8 GC",
  cpu: "other CPU",
  fsync: "fsync",
  idle: "idle",
  "off-cpu": "off CPU (preempted, locks)",
};

/** A stretch of the thread's time (epoch ms) and what it held it. */
interface Interval {
  from: number;
  to: number;
  hold: Hold;
}

export interface ThreadHolds {
  /** Chunks later than LATE_MS within the recording, and how many of them each hold took most of the wait of. */
  late: number;
  byHold: Record<Hold, number>;
  /** cppgc sweeps of 2 ms or more: how many, and the longest (ms). */
  sweeps: number;
  longestSweepMs: number;
}

/** V8's perf map, so that perf names the isolate's JavaScript: for the next workerd wrangler starts. */
export function namePerfFrames(): void {
  const flags = process.env.MINIFLARE_WORKERD_V8_FLAGS ?? "";
  if (!flags.includes("--perf-basic-prof")) process.env.MINIFLARE_WORKERD_V8_FLAGS = `${flags} --perf-basic-prof`.trim();
}

export interface PerfRecording {
  /** The process recorded, and where its recording is. */
  readonly pid: number;
  readonly dataPath: string;
  /** Stops the recording and reads the thread's time as intervals. */
  stop(): Promise<Interval[]>;
}

/** Starts `perf record` on `pid` (CPU samples and switch-outs, with stacks) into `dataPath`. */
export function recordThread(pid: number, dataPath: string): PerfRecording {
  // perf stamps with CLOCK_MONOTONIC (its realtime clock is refused with tracepoints); Node's hrtime is the same clock.
  const monotonicToEpoch = preciseNow() - Number(process.hrtime.bigint()) / 1e6;
  const events = ["-e", "cpu-clock", "-F", String(SAMPLES_PER_SECOND), "-e", "sched:sched_switch", "-g"];
  const record = spawn("perf", ["record", "-q", "-k", "CLOCK_MONOTONIC", ...events, "-p", String(pid), "-o", dataPath], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = exitOf(record);
  return {
    pid,
    dataPath,
    async stop() {
      record.kill("SIGINT");
      if ((await exited) !== 0) throw new Error("--perf: perf record failed (is perf installed, and may this user trace workerd?)");
      return readIntervals(dataPath, monotonicToEpoch);
    },
  };
}

const exitOf = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    child.on("exit", (code, signal) => resolve(signal === "SIGINT" ? 0 : code));
    child.on("error", () => resolve(-1));
  });

/** The recording's busiest thread (the one running the isolates) as intervals: a CPU sample covers the period before
 * it; a switch-out covers the time until the thread's next event. */
async function readIntervals(dataPath: string, monotonicToEpoch: number): Promise<Interval[]> {
  const script = spawn("perf", ["script", "-i", dataPath, "-F", "tid,time,event,ip,sym"], { stdio: ["ignore", "pipe", "ignore"] });
  // Each event is classified as its stack ends, so a long recording keeps no stacks.
  const events: Array<{ tid: string; at: number; switchOut: boolean; hold: Hold }> = [];
  let stack = "";
  const classifyLast = () => {
    const last = events.at(-1);
    if (last) last.hold = last.switchOut ? offCpuHold(stack) : onCpuHold(stack);
    stack = "";
  };
  for await (const line of createInterface({ input: script.stdout! })) {
    const header = /^\s*(\d+)\s+([\d.]+):\s+(?:\d+\s+)?([\w:-]+):/.exec(line);
    if (!header) {
      stack += line;
      continue;
    }
    classifyLast();
    events.push({
      tid: header[1]!,
      at: Number(header[2]) * 1000 + monotonicToEpoch,
      switchOut: header[3]!.startsWith("sched:"),
      hold: "cpu",
    });
  }
  classifyLast();
  await exitOf(script);
  const samples = new Map<string, number>();
  for (const event of events) if (!event.switchOut) samples.set(event.tid, (samples.get(event.tid) ?? 0) + 1);
  const thread = [...samples].sort((a, b) => b[1] - a[1])[0]?.[0];
  const mine = events.filter((event) => event.tid === thread);
  return mine.map((event, index) =>
    event.switchOut
      ? { from: event.at, to: mine[index + 1]?.at ?? event.at, hold: event.hold }
      : { from: event.at - SAMPLE_MS, to: event.at, hold: event.hold },
  );
}

function onCpuHold(stack: string): Hold {
  if (stack.includes("cppgc::internal::Sweeper")) return "sweep";
  return /Heap::|Scavenge|MarkCompact|MinorGC|GCTracer/.test(stack) ? "gc" : "cpu";
}

function offCpuHold(stack: string): Hold {
  if (/fsync|fdatasync/.test(stack)) return "fsync";
  return stack.includes("epoll") ? "idle" : "off-cpu";
}

/** Each chunk (epoch ms sent, ms late) later than LATE_MS, put down to the hold that took most of its wait. */
export function threadHolds(intervals: Interval[], chunks: Array<[number, number]>): ThreadHolds {
  const byHold = Object.fromEntries(HOLDS.map((hold) => [hold, 0])) as Record<Hold, number>;
  const first = intervals[0]?.from ?? Number.POSITIVE_INFINITY;
  const last = intervals.at(-1)?.to ?? Number.NEGATIVE_INFINITY;
  let late = 0;
  for (const [sentAt, lateMs] of chunks) {
    if (lateMs <= LATE_MS || sentAt < first || sentAt + lateMs > last) continue;
    late++;
    const share = new Map<Hold, number>();
    for (const interval of intervals) {
      const overlap = Math.min(sentAt + lateMs, interval.to) - Math.max(sentAt, interval.from);
      if (overlap > 0) share.set(interval.hold, (share.get(interval.hold) ?? 0) + overlap);
    }
    const most = [...share].sort((a, b) => b[1] - a[1])[0];
    if (most) byHold[most[0]]++;
  }
  const sweeps: number[] = [];
  let stretch: { from: number; to: number } | null = null;
  for (const interval of intervals) {
    if (interval.hold !== "sweep") continue;
    if (stretch && interval.from - stretch.to < STRETCH_GAP_MS) stretch.to = interval.to;
    else {
      stretch = { from: interval.from, to: interval.to };
      sweeps.push(0);
    }
    sweeps[sweeps.length - 1] = stretch.to - stretch.from;
  }
  const long = sweeps.filter((ms) => ms >= 2);
  return { late, byHold, sweeps: long.length, longestSweepMs: Math.max(0, ...long) };
}
