/**
 * The call path under load, side by side with its floor: `node test/bench/load.bench.ts [--calls 50,100,200]
 * [--targets relay,platform] [--seconds 10] [--recording on]` (`npm run bench` runs it; `--recording on` has the
 * tenant record every call, the two-channel WAV to R2, to show what recording adds to the call path). For each count
 * N it runs the same load on the same stack (wrangler's local workerd, state on disk): (a) a bare Durable Object relay
 * (test/bench/relay/, no storage, no auth), then (b) the real platform (wrangler.toml, a freshly seeded D1).
 * `--targets` may add `bundle-relay`: the bare relay with the platform's Worker bundle evaluated in its isolate and
 * never called, the platform's size without its work (relay/start-relay.ts); its ratios, like the platform's, are to
 * the bare relay. N Twilio calls, started 10 a second, each a signed voice webhook → TwiML → media socket → real-time
 * 20 ms µ-law frames of recorded speech and silence in turns (hello, a pause, an interruption over the agent's
 * reply, silence) for at least `--seconds` of all N calls streaming together, against the OpenAI Realtime simulator
 * (pcmu pass-through), marks echoed as the audio "plays", `clear` honoured.
 *
 * Every caller frame carries its index in its first four µ-law samples (inaudible, below the simulator's VAD) and
 * the simulator records each frame's first four bytes, so frames lost, duplicated or reordered are counted exactly;
 * agent chunks are matched by their first four bytes in order. Figures, for both targets and their ratio:
 * - caller → provider: frame i received by the simulator − sent by the carrier side;
 * - provider → caller: media message k on the carrier socket − the simulator's send of chunk k;
 * - barge-in → `clear`: the simulator's speech_started while agent audio plays → `clear` on the carrier socket;
 * - response per turn: the simulator's end of the caller's turn → that answer's first audio on the carrier socket;
 * - workerd CPU per relayed frame: workerd's utime+stime over the run ÷ (caller frames + agent media relayed).
 * The simulator runs on a thread of its own (simulator-thread.ts); every clock is `performance.timeOrigin +
 * performance.now()`, which agrees across the threads of one process.
 * Prints tables; asserts nothing about time. Bounded: every call and run has a deadline; everything closes itself.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { encodeG711, FRAME_MS, readWav, SAMPLES_PER_FRAME } from "../simulators/carriers/audio.ts";
import { uuid } from "../simulators/carriers/ids.ts";
import type { ConnectionSnapshot } from "../simulators/providers/index.ts";
import { preciseNow } from "../simulators/providers/recorder.ts";
import { loadBenchSettings, startBenchPlatform, stopBenchCarriers } from "./bench-platform.ts";
import {
  type AllocationSampler,
  allocationSummary,
  heapSummary,
  type Profiler,
  profileSummary,
  startAllocationSampler,
  startProfiler,
} from "./cpu-profile.ts";
import { type GcPause, gcRow, readGcPauses, traceGcTo } from "./gc/gc-trace.ts";
import { option } from "./options.ts";
import {
  HOLD_NAMES,
  HOLDS,
  LATE_MS,
  namePerfFrames,
  type PerfRecording,
  recordThread,
  type ThreadHolds,
  threadHolds,
} from "./perf/thread-holds.ts";
import { startRelay } from "./relay/start-relay.ts";
import { type SimulatorThread, startSimulatorThread } from "./simulator-thread.ts";
import {
  type CallState,
  finishCall,
  HANDSHAKE_TIMEOUT_MS,
  ms,
  newCall,
  pumpFrames,
  startCall,
  summarize,
  table,
  WEBHOOK_TIMEOUT_MS,
} from "./twilio-side.ts";
import { rssKiB, workerdCpuMeter, workerdPids } from "./workerd-proc.ts";

const TARGET_NAMES = ["relay", "bundle-relay", "platform"] as const;
type Target = (typeof TARGET_NAMES)[number];

const COUNTS = option("calls", "50,100,200").split(",").map(Number);
if (!COUNTS.every((count) => Number.isInteger(count) && count >= 1 && count <= 1000)) throw new Error("--calls: a comma list of 1..1000");
const TARGETS = option("targets", "relay,platform").split(",") as Target[];
if (!TARGETS.every((target) => TARGET_NAMES.includes(target))) throw new Error("--targets: relay, bundle-relay and/or platform");
const TOGETHER_MS = Number(option("seconds", "10")) * 1000;
/**
 * `--rounds N`: each call count runs N rounds of the targets in turn; the report gives each run and, past one round,
 * every round's samples pooled. One run's p99 moves with where the collector's pauses happen to fall; pooling is
 * the repeatable figure.
 */
const ROUNDS = Number(option("rounds", "1"));
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1 && ROUNDS <= 10)) throw new Error("--rounds: 1..10");
/** A run as the report names it: `platform × 50`, and `(round 2)` when there are several. */
const runLabel = (target: Target, count: number, round: number) => `${target} × ${count}${ROUNDS > 1 ? ` (round ${round + 1})` : ""}`;
/** A run's name in file names: its target and count, and its round when there are several. */
const runName = (target: Target, count: number, round: number) => `${target}-${count}${ROUNDS > 1 ? `-${round + 1}` : ""}`;
/** `--profile`: a CPU profile of each target's isolate over its run, its top functions printed (slows the runs: not for figures). */
const PROFILE = ["--profile", "--allocations", "--promoted", "--heap"].some((flag) => process.argv.includes(flag));
/** `--promoted`: as `--allocations`, but only what outlived a minor GC — what fills the old generation, whose collections pause the thread. */
const PROMOTED = process.argv.includes("--promoted");
/** `--allocations`: instead of CPU, V8's sampled allocations by function over each run (what feeds the GC). */
const ALLOCATIONS = process.argv.includes("--allocations") || PROMOTED;
/** `--heap`: instead of CPU, a heap snapshot of the isolate 3 s after all calls stream (what a major GC marks), by constructor. */
const HEAP = process.argv.includes("--heap");
/** `--gc`: V8's collections in each target's isolate (V8's own trace), and which late frames they held (gc/gc-trace.ts). */
const GC = process.argv.includes("--gc");
/**
 * `--perf`: `perf record` on each target's serving workerd (CPU samples and switch-outs), and what held each of its
 * steady agent chunks later than 5 ms: cppgc's sweep, V8's GC, other CPU, the disk, idle (perf/thread-holds.ts).
 * Needs perf and leave to trace workerd; perf's sampling costs workerd CPU, so its runs are for the attribution only.
 */
const PERF = process.argv.includes("--perf");
if (PERF && spawnSync("perf", ["--version"]).status !== 0) throw new Error("--perf: perf is not installed (Debian: linux-perf)");
const gcLogOf = (name: string) => join(tmpdir(), `switchboard-gc-${name}.log`);
/** `--timeline DIR`: each run's samples as CSV, to lay a bad run against a good one: caller → provider (epoch ms sent, ms late,
 * call), in `-agent.csv`, provider → caller (epoch ms sent, ms late, call, the chunk's place in its reply, phase), in
 * `-ends.csv` when each call sent its `stop`, and in `-setup.csv` each call's voice webhook sent, its TwiML back and its
 * media socket open (call, epoch ms ×3). */
const TIMELINE_DIR = option("timeline", "");
/**
 * `--trace-collector`: keep wrangler's local trace collector (its Local Explorer's store) on both targets, as `wrangler
 * dev` has it by default. Off otherwise: it stores every span and log line of a worker in a SQLite database on
 * workerd's one thread, a commit per log line, which a deployment does not do on the isolate; and it grows with each
 * target's I/O (a platform call leaves ~13 times the relay's spans), so it is no shared floor (test/bench/FINDINGS.md,
 * item 20). wrangler.toml's `[observability]` does not switch it; X_LOCAL_OBSERVABILITY, read when a worker starts, does.
 */
const TRACE_COLLECTOR = process.argv.includes("--trace-collector");
if (!TRACE_COLLECTOR) process.env.X_LOCAL_OBSERVABILITY = "false";
const RECORDING = option("recording", "off");
if (RECORDING !== "on" && RECORDING !== "off") throw new Error("--recording: on or off");
if (!(TOGETHER_MS >= 1000 && TOGETHER_MS <= 600_000)) throw new Error("--seconds: 1..600");

const NUMBER = "+15550177001";
const RAMP_CALLS_PER_SECOND = 10;
const STAGGER_MS = (calls: number) => (calls <= 1 ? 0 : (calls / RAMP_CALLS_PER_SECOND) * 1000);
/** After its last frame a call waits this long for the agent's last audio and marks, then stops. */
const TAIL_WAIT_MS = 500;
const TICK_MS = 5;
/** The pause between runs, after a `sync` (settle below). */
const SETTLE_MS = 15_000;

// ── the caller's audio: speech and silence in turns, each frame tagged with its index ──────────────────────

const AUDIO = join(import.meta.dirname, "../fixtures/audio");
const wav = (name: string) => readWav(readFileSync(join(AUDIO, name)));
const silence = (ms: number) => new Int16Array((ms * 8000) / 1000);
/** hello → the agent answers (LONG_REPLY, ~5 s, played in real time) → 1.5 s after hello the caller talks over that
 * reply (a barge-in) → the agent answers again → 3 s of silence. */
const SCRIPT_PARTS = [wav("caller-hello.wav"), silence(1500), wav("caller-interrupt.wav"), silence(3000)];
const LONG_REPLY = "Of course. Your balance is one hundred and twenty dollars, and your next bill is due on the first.";
const SHORT_REPLY = "Sure, let me transfer you to a person now.";
const scriptSamples = new Int16Array(SCRIPT_PARTS.reduce((total, part) => total + part.length, 0));
for (let index = 0, offset = 0; index < SCRIPT_PARTS.length; offset += SCRIPT_PARTS[index]!.length, index++)
  scriptSamples.set(SCRIPT_PARTS[index]!, offset);
const CYCLE_FRAMES = Math.floor(scriptSamples.length / SAMPLES_PER_FRAME);
const CYCLE_MS = CYCLE_FRAMES * FRAME_MS;
const SCRIPT_FRAMES: Uint8Array[] = Array.from({ length: CYCLE_FRAMES }, (_, index) =>
  encodeG711("PCMU", scriptSamples.subarray(index * SAMPLES_PER_FRAME, (index + 1) * SAMPLES_PER_FRAME)),
);
/** Base64 of each frame from byte 6 on: 6 bytes are 8 base64 characters, so a tagged head concatenates onto it. */
const SCRIPT_TAILS: string[] = SCRIPT_FRAMES.map((frame) => Buffer.from(frame.subarray(6)).toString("base64"));
/** Each call streams until all N have streamed together for TOGETHER_MS, in whole scripts. */
const framesFor = (calls: number) => Math.ceil((STAGGER_MS(calls) + TOGETHER_MS) / CYCLE_MS) * CYCLE_FRAMES;

/** The 16-bit frame index in the first four µ-law bytes as 0xF0 | nibble: codes of magnitude ≤ 30 of 8159, silent. */
const TAG_MASK = 0xf0f0f0f0;
const head = Buffer.alloc(6);
function taggedPayload(index: number): string {
  const frame = SCRIPT_FRAMES[index % CYCLE_FRAMES]!;
  for (let nibble = 0; nibble < 4; nibble++) head[nibble] = 0xf0 | ((index >> (4 * (3 - nibble))) & 0xf);
  head[4] = frame[4]!;
  head[5] = frame[5]!;
  return head.toString("base64") + SCRIPT_TAILS[index % CYCLE_FRAMES]!;
}
function indexOfHead(head: number): number {
  if ((head & TAG_MASK) >>> 0 !== TAG_MASK) return -1;
  return (((head >>> 24) & 0xf) << 12) | (((head >>> 16) & 0xf) << 8) | (((head >>> 8) & 0xf) << 4) | (head & 0xf);
}

// ── workerd's CPU and memory, from /proc ────────────────────────────────────────────────────────────────────

/** The filesystem a directory lives on (its longest mount point prefix in /proc/mounts). */
function filesystemOf(directory: string): string {
  const mounts = readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((line) => line.split(" "));
  const best = mounts.filter(
    (fields) => fields[1] && (directory === fields[1] || directory.startsWith(fields[1] === "/" ? "/" : `${fields[1]}/`)),
  );
  best.sort((a, b) => b[1]!.length - a[1]!.length);
  return best[0] ? `${best[0][2]} (${best[0][0]} on ${best[0][1]})` : "unknown";
}

// ── one run: N concurrent calls against one target ──────────────────────────────────────────────────────────

type Phase = "setup" | "steady" | "ending";

interface RunResult {
  target: Target;
  calls: number;
  round: number;
  callerToProvider: number[];
  /** Caller → provider by phase: while calls are still being set up, all streaming, while calls end. */
  callerToProviderByPhase: Record<Phase, number[]>;
  providerToCaller: number[];
  /** Provider → caller by the phase the chunk was sent in. */
  providerToCallerByPhase: Record<Phase, number[]>;
  interruption: number[];
  responses: number[];
  framesSent: number;
  framesReceived: number;
  framesLost: number;
  framesDuplicated: number;
  framesReordered: number;
  chunksSent: number;
  mediaReceived: number;
  chunksLost: number;
  chunksDuplicated: number;
  chunksReordered: number;
  turns: number;
  turnsAnswered: number;
  bargeIns: number;
  bargeInsWithoutClear: number;
  failures: string[];
  webhookMs: number[];
  rssPerCallKiB: number;
  workerdCpuMs: number;
  benchCpuPercent: number;
  loopLagP99Ms: number;
  simulatorLagP99Ms: number;
  wallMs: number;
  load: string;
  /** `--gc`: the isolate's collections over the run, and every caller frame as (epoch ms sent, ms late). */
  gcPauses: GcPause[];
  callerFrames: Array<[number, number]>;
  /** `--perf`: what held the steady agent chunks that were late. */
  threadHolds: ThreadHolds | null;
}

/** The workerd serving the calls: the largest of wrangler's (the other proxies its requests). */
function servingWorkerd(): number {
  const serving = workerdPids().sort((a, b) => rssKiB(b) - rssKiB(a))[0];
  if (serving === undefined) throw new Error("--perf: no workerd of this bench's to record");
  return serving;
}

/** Multiset difference of two sequences, and how many received items came after a later-sent one. */
function compareSequences(sent: number[], received: number[]): { lost: number; duplicated: number; reordered: number } {
  const counts = new Map<number, number>();
  for (const value of sent) counts.set(value, (counts.get(value) ?? 0) + 1);
  let duplicated = 0;
  for (const value of received) {
    const left = counts.get(value) ?? 0;
    if (left === 0) duplicated++;
    else counts.set(value, left - 1);
  }
  let lost = 0;
  for (const left of counts.values()) lost += left;
  let reordered = 0;
  if (lost === 0 && duplicated === 0) for (let index = 0; index < sent.length; index++) if (sent[index] !== received[index]) reordered++;
  return { lost, duplicated, reordered };
}

async function runCalls(
  url: string,
  simulator: SimulatorThread,
  target: Target,
  count: number,
  round: number,
  runIndex: number,
  inspectorUrl: string | null,
): Promise<RunResult> {
  const name = runName(target, count, round);
  const frameCount = framesFor(count);
  const cycles = frameCount / CYCLE_FRAMES;
  const replies = Array.from({ length: 2 * cycles }, (_, index) => (index % 2 === 0 ? LONG_REPLY : SHORT_REPLY));
  const calls: CallState[] = Array.from({ length: count }, (_, index) =>
    newCall(
      `load-${runIndex}-${target}-${count}-${index}-${uuid().slice(0, 8)}`,
      // 198.18.0.0/15, the block reserved for benchmarks (RFC 2544): a source address per call.
      `198.18.${(runIndex * 8 + Math.floor(index / 250)) % 256}.${(index % 250) + 1}`,
      frameCount,
    ),
  );
  await Promise.all(calls.map((call) => simulator.setScenario(call.key, { replies })));

  const rss = () => workerdPids().reduce((total, pid) => total + rssKiB(pid), 0);
  await sleep(1000);
  const rssBefore = rss();
  const workerdCpu = workerdCpuMeter();
  const benchCpuBefore = process.cpuUsage();
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  await simulator.loopLagP99Ms(); // from now on
  const profiler: Profiler | null = inspectorUrl && !ALLOCATIONS && !HEAP ? await startProfiler(inspectorUrl) : null;
  let heap: Promise<string[][]> | null = null;
  const heapPath = join(tmpdir(), `switchboard-${name}.heapsnapshot`);
  const allocations: AllocationSampler | null =
    inspectorUrl && ALLOCATIONS ? await startAllocationSampler(inspectorUrl, { youngToo: !PROMOTED }) : null;
  const perf: PerfRecording | null = PERF ? recordThread(servingWorkerd(), join(tmpdir(), `switchboard-perf-${name}.data`)) : null;
  const started = performance.now();
  const startedAt = preciseNow();
  const staggerMs = STAGGER_MS(count);
  const deadline = started + staggerMs + WEBHOOK_TIMEOUT_MS + HANDSHAKE_TIMEOUT_MS + frameCount * FRAME_MS + 30_000;
  let streaming = 0;
  let rssLive = 0;
  let allStreamingAt = Infinity;
  /** When each call sent its `stop`, in time order (the phases, and `--timeline`). */
  const endedAt: number[] = [];
  const finishing: Promise<void>[] = [];
  const launches = calls.map(async (call, index) => {
    await sleep((staggerMs * index) / Math.max(1, count - 1));
    try {
      await startCall(url, call, NUMBER, () => streaming++);
    } catch (error) {
      call.failure ??= String(error instanceof Error ? error.message : error);
      call.phase = "done";
      call.socket?.terminate();
    }
  });

  for (;;) {
    pumpFrames(calls, (_call, index) => taggedPayload(index));
    const now = performance.now();
    for (const call of calls) {
      if (call.phase === "tail" && now >= call.streamStartedAt + call.frameCount * FRAME_MS + TAIL_WAIT_MS) {
        streaming--;
        endedAt.push(preciseNow());
        finishing.push(finishCall(url, call, NUMBER));
      }
    }
    if (streaming === count && allStreamingAt === Infinity) allStreamingAt = preciseNow();
    if (HEAP && inspectorUrl && !heap && preciseNow() > allStreamingAt + 3000) heap = heapSummary(inspectorUrl, count, heapPath);
    if (streaming === count && Math.floor(now / 1000) !== Math.floor((now - TICK_MS) / 1000)) rssLive = Math.max(rssLive, rss());
    if (calls.every((call) => call.phase === "done")) break;
    if (now > deadline) {
      for (const call of calls) {
        if (call.phase === "done") continue;
        call.failure ??= `still ${call.phase} at the run's deadline`;
        call.phase = "done";
        call.socket?.terminate();
      }
      break;
    }
    await sleep(TICK_MS);
  }
  await Promise.all(launches);
  await Promise.all(finishing);
  const wallMs = performance.now() - started;
  const threadIntervals = perf ? await perf.stop() : [];
  const gcPauses = GC ? readGcPauses(gcLogOf(name), startedAt, preciseNow()) : [];
  lag.disable();
  const benchCpu = process.cpuUsage(benchCpuBefore);
  const workerdCpuMs = workerdCpu.read(name);
  if (profiler) {
    const path = join(tmpdir(), `switchboard-${name}.cpuprofile`);
    console.log(
      table(
        `CPU profile of the ${target}'s isolate, ${count} calls: self time by function (whole profile in ${path})`,
        ["function", "self ms", "share"],
        profileSummary(await profiler.stop(), path),
      ),
    );
  }
  if (heap) {
    console.log(
      table(
        `Live heap of the ${target}'s isolate while ${count} calls stream (after a full GC): self size by kind and constructor (whole snapshot in ${heapPath})`,
        ["kind / constructor", "KiB", "KiB a call", "objects a call"],
        await heap,
      ),
    );
  }
  if (allocations) {
    console.log(
      table(
        `${PROMOTED ? "Allocations that outlived a minor GC" : "Allocations"} in the ${target}'s isolate, ${count} calls: sampled bytes by allocating function`,
        ["function", "MiB", "share"],
        allocationSummary((await allocations.stop()).head),
      ),
    );
  }
  await sleep(500); // the simulator sees the last frames and closes

  const result: RunResult = {
    target,
    calls: count,
    round,
    callerToProvider: [],
    callerToProviderByPhase: { setup: [], steady: [], ending: [] },
    providerToCaller: [],
    providerToCallerByPhase: { setup: [], steady: [], ending: [] },
    interruption: [],
    responses: [],
    framesSent: 0,
    framesReceived: 0,
    framesLost: 0,
    framesDuplicated: 0,
    framesReordered: 0,
    chunksSent: 0,
    mediaReceived: 0,
    chunksLost: 0,
    chunksDuplicated: 0,
    chunksReordered: 0,
    turns: 0,
    turnsAnswered: 0,
    bargeIns: 0,
    bargeInsWithoutClear: 0,
    failures: [],
    webhookMs: calls.flatMap((call) => (call.webhookMs === null ? [] : [call.webhookMs])),
    rssPerCallKiB: rssLive > 0 ? (rssLive - rssBefore) / count : Number.NaN,
    workerdCpuMs,
    benchCpuPercent: ((benchCpu.user + benchCpu.system) / 1000 / wallMs) * 100,
    loopLagP99Ms: lag.percentile(99) / 1e6,
    simulatorLagP99Ms: await simulator.loopLagP99Ms(),
    wallMs,
    load: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
    gcPauses,
    callerFrames: [],
    threadHolds: null,
  };
  const phaseAt = (at: number): Phase => (at < allStreamingAt ? "setup" : at < (endedAt[0] ?? Infinity) ? "steady" : "ending");
  const timeline: string[] = [];
  const agentTimeline: string[] = [];
  const steadyChunks: Array<[number, number]> = [];
  for (const call of calls) {
    if (call.failure) result.failures.push(call.failure);
    const connections: ConnectionSnapshot[] = (await simulator.takeSessions(call.key)).filter(
      (connection) => connection.refusedWithStatus === null,
    );

    // Caller → provider, by each frame's tag.
    const sent = call.nextFrame;
    const indexes = connections.flatMap((connection) => connection.audioIn.frameHeads.entries.map(indexOfHead));
    const arrivals = connections.flatMap((connection) => connection.audioIn.frameTimes.entries);
    const frames = compareSequences(
      Array.from({ length: sent }, (_, index) => index),
      indexes,
    );
    result.framesSent += sent;
    result.framesReceived += indexes.length;
    result.framesLost += frames.lost;
    result.framesDuplicated += frames.duplicated;
    result.framesReordered += frames.reordered;
    const seen = new Set<number>();
    indexes.forEach((index, position) => {
      if (index < 0 || index >= sent || seen.has(index)) return;
      seen.add(index);
      const sentAt = call.sentAt[index]!;
      result.callerToProvider.push(arrivals[position]! - sentAt);
      result.callerToProviderByPhase[phaseAt(sentAt)].push(arrivals[position]! - sentAt);
      if (GC) result.callerFrames.push([sentAt, arrivals[position]! - sentAt]);
      if (TIMELINE_DIR) timeline.push(`${sentAt.toFixed(1)},${(arrivals[position]! - sentAt).toFixed(2)},${calls.indexOf(call)}`);
    });

    // Provider → caller, chunk k ↔ media message k when the sequences agree.
    const chunks = connections.flatMap((connection) => connection.audioOut.chunkTimes.entries);
    const heads = call.agentMediaHeads;
    const agent = compareSequences(
      chunks.map((chunk) => chunk.head),
      heads,
    );
    result.chunksSent += chunks.length;
    result.mediaReceived += heads.length;
    result.chunksLost += agent.lost;
    result.chunksDuplicated += agent.duplicated;
    result.chunksReordered += agent.reordered;
    const inOrder = agent.lost + agent.duplicated + agent.reordered === 0 && call.agentMediaAt.length === chunks.length;
    if (inOrder) {
      let position = 0;
      for (let index = 0; index < chunks.length; index++) {
        const chunk = chunks[index]!;
        const late = call.agentMediaAt[index]! - chunk.at;
        result.providerToCaller.push(late);
        result.providerToCallerByPhase[phaseAt(chunk.at)].push(late);
        if (PERF && phaseAt(chunk.at) === "steady") steadyChunks.push([chunk.at, late]);
        // Which chunk of its reply (0: the reply's first), to tell per-reply work from per-chunk work.
        position = index > 0 && chunks[index - 1]!.responseId === chunk.responseId ? position + 1 : 0;
        if (TIMELINE_DIR)
          agentTimeline.push(`${chunk.at.toFixed(1)},${late.toFixed(2)},${calls.indexOf(call)},${position},${phaseAt(chunk.at)}`);
      }
    }

    // Turns: each caller turn the simulator detected, answered by audio that reached the caller.
    for (const connection of connections) {
      for (const turn of connection.turns.entries) {
        result.turns++;
        const response = connection.responses.entries.find((entry) => entry.turn === turn.turn && entry.firstAudioAt !== null);
        if (!response) continue;
        const first = chunks.findIndex((chunk) => chunk.responseId === response.id);
        if (first < 0 || (inOrder && call.agentMediaAt[first] === undefined)) continue;
        result.turnsAnswered++;
        if (inOrder) result.responses.push(call.agentMediaAt[first]! - turn.speechStoppedAt);
      }
      for (const bargeIn of connection.bargeIns.entries) {
        if (!bargeIn.agentAudioPlaying) continue;
        result.bargeIns++;
        const clear = call.clearsAt.find((at) => at >= bargeIn.at);
        if (clear === undefined) result.bargeInsWithoutClear++;
        else result.interruption.push(clear - bargeIn.at);
      }
    }
  }
  if (perf) {
    result.threadHolds = threadHolds(threadIntervals, steadyChunks);
    console.log(`  ${runLabel(target, count, round)}: perf recording of workerd ${perf.pid} in ${perf.dataPath}`);
  }
  if (TIMELINE_DIR) {
    mkdirSync(TIMELINE_DIR, { recursive: true });
    writeFileSync(join(TIMELINE_DIR, `${name}.csv`), `${timeline.join("\n")}\n`);
    writeFileSync(join(TIMELINE_DIR, `${name}-agent.csv`), `${agentTimeline.join("\n")}\n`);
    writeFileSync(join(TIMELINE_DIR, `${name}-ends.csv`), `${endedAt.map((at) => at.toFixed(1)).join("\n")}\n`);
    const setups = calls.map(({ setupAt }, index) =>
      [index, setupAt.webhook, setupAt.answered, setupAt.opened].map((at) => at.toFixed(1)).join(","),
    );
    writeFileSync(join(TIMELINE_DIR, `${name}-setup.csv`), `${setups.join("\n")}\n`);
  }
  return result;
}

// ── the two targets ─────────────────────────────────────────────────────────────────────────────────────────

interface Running {
  url: string;
  inspectorUrl: string | null;
  stop(): Promise<void>;
}

const commandLine = `node ${process.argv
  .slice(1)
  .map((arg) => arg.replace(`${process.cwd()}/`, ""))
  .join(" ")}`;
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
process.env.WRANGLER_SEND_METRICS ??= "false";

const simulator = await startSimulatorThread({ maxRecordedEntries: 50_000 });
const settings = await loadBenchSettings(() => simulator.settings);
const stateDirectory = tmpdir();
const results: RunResult[] = [];
let running: Running | undefined;
try {
  console.log(`\nThe call path under load, bare relay and platform side by side — ${commandLine}`);
  console.log(
    `Each call: ${(CYCLE_MS / 1000).toFixed(1)} s scripts of 20 ms µ-law frames in real time (hello, 1.5 s pause, an interruption over the agent's ` +
      `reply, 3 s silence), repeated until all calls have streamed together for ${TOGETHER_MS / 1000} s; calls start ${RAMP_CALLS_PER_SECOND} a second.\n` +
      `Local state (D1, the objects' SQLite) lives under ${stateDirectory}, on ${filesystemOf(stateDirectory)}; every run starts a fresh worker on its own directory.\n` +
      `Wrangler's local trace collector: ${TRACE_COLLECTOR ? "on for both targets (--trace-collector)" : "off for both targets (X_LOCAL_OBSERVABILITY=false; --trace-collector keeps it)"}.`,
  );
  let runIndex = 0;
  for (const count of COUNTS) {
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of TARGETS) {
        const name = runLabel(target, count, round);
        console.log(
          `  ${name}: ${framesFor(count)} frames a call, load average ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}…`,
        );
        if (GC) {
          rmSync(gcLogOf(runName(target, count, round)), { force: true });
          traceGcTo(gcLogOf(runName(target, count, round)));
        }
        if (PERF) namePerfFrames();
        if (target === "platform") {
          const tenantSettings = { recording: RECORDING };
          running = (await startBenchPlatform(settings, { openai: NUMBER }, { inspector: PROFILE, tenantSettings })).platform;
        } else {
          running = await startRelay(settings, { inspector: PROFILE, withPlatformBundle: target === "bundle-relay" });
        }
        const result = await runCalls(running.url, simulator, target, count, round, runIndex++, running.inspectorUrl);
        await running.stop();
        running = undefined;
        results.push(result);
        await settle();
        console.log(
          `  ${name}: ${count - result.failures.length} ok, ${result.failures.length} failed, ${(result.wallMs / 1000).toFixed(1)} s`,
        );
      }
    }
  }
} finally {
  await running?.stop();
  await simulator.stop();
  await stopBenchCarriers();
}

/**
 * Between runs: the run's state (tens of MB of SQLite under /tmp, just deleted) is written back and the disk left
 * quiet before the next target starts. Without it the target after a platform run paid for that writeback on its
 * fsyncs: back-to-back platform runs at 100 calls varied by 40 % in CPU per frame and 5× in p99.
 */
async function settle(): Promise<void> {
  spawnSync("sync");
  await sleep(SETTLE_MS);
}

// ── report ──────────────────────────────────────────────────────────────────────────────────────────────────

const label = (result: RunResult) => runLabel(result.target, result.calls, result.round);
const pick = (result: RunResult, figure: keyof RunResult) => result[figure] as number[];
const relayOf = (result: RunResult) =>
  results.find((other) => other.target === "relay" && other.calls === result.calls && other.round === result.round);
const ratio = (value: number | undefined, floor: number | undefined) =>
  value === undefined || floor === undefined || floor <= 0 ? "–" : `${(value / floor).toFixed(2)}×`;
function latencyTable(title: string, figure: keyof RunResult): string {
  const rows = results.map((result) => {
    const summary = summarize(pick(result, figure));
    const floor = result.target !== "relay" ? summarize(pick(relayOf(result) ?? result, figure)) : null;
    const vsRelay = floor ? `${ratio(summary?.p50, floor.p50)} / ${ratio(summary?.p99, floor.p99)}` : "";
    return [label(result), ms(summary?.p50), ms(summary?.p99), ms(summary?.max), String(summary?.count ?? 0), vsRelay];
  });
  return table(title, ["run", "p50 ms", "p99 ms", "max ms", "count", "÷ bare relay (p50 / p99)"], rows);
}
console.log(latencyTable("Caller → provider (carrier frame sent → provider simulator received)", "callerToProvider"));
/** A direction's samples by phase: while calls are still being set up, all streaming, while calls end. */
const phaseTable = (title: string, figure: "callerToProviderByPhase" | "providerToCallerByPhase") =>
  table(
    title,
    ["run", "setup p50 / p99 ms", "steady p50 / p99 ms", "ending p50 / p99 ms"],
    results.map((result) => [
      label(result),
      ...(["setup", "steady", "ending"] as const).map((phase) => {
        const summary = summarize(result[figure][phase]);
        return summary ? `${ms(summary.p50)} / ${ms(summary.p99)} (${summary.count})` : "–";
      }),
    ]),
  );
console.log(
  phaseTable(
    "Caller → provider by phase: calls still being set up (webhooks, upgrades, provider sessions), all streaming, calls ending",
    "callerToProviderByPhase",
  ),
);
console.log(latencyTable("Provider → caller (simulator chunk sent → carrier socket received the media message)", "providerToCaller"));
console.log(phaseTable("Provider → caller by the phase the chunk was sent in", "providerToCallerByPhase"));
console.log(latencyTable("Barge-in → `clear` (simulator speech_started while agent audio plays → `clear` at the carrier)", "interruption"));
console.log(
  latencyTable("Response per turn (simulator's end of the caller's turn → the answer's first audio at the carrier)", "responses"),
);
console.log(latencyTable("Voice webhook round trip (POST → TwiML)", "webhookMs"));
console.log(
  table(
    "Frames and calls",
    [
      "run",
      "caller frames sent / received",
      "lost / dup / reordered",
      "agent chunks sent / received",
      "lost / dup / reordered",
      "turns answered",
      "barge-ins (no clear)",
      "calls failed",
    ],
    results.map((result) => [
      label(result),
      `${result.framesSent} / ${result.framesReceived}`,
      `${result.framesLost} / ${result.framesDuplicated} / ${result.framesReordered}`,
      `${result.chunksSent} / ${result.mediaReceived}`,
      `${result.chunksLost} / ${result.chunksDuplicated} / ${result.chunksReordered}`,
      `${result.turnsAnswered} of ${result.turns}`,
      `${result.bargeIns} (${result.bargeInsWithoutClear})`,
      `${result.failures.length} of ${result.calls}`,
    ]),
  ),
);
const cpuPerFrame = (result: RunResult) => (result.workerdCpuMs * 1000) / Math.max(1, result.framesReceived + result.mediaReceived);
console.log(
  table(
    "workerd CPU and memory (CPU % of one core; 2 cores shared by workerd, the simulator and this bench)",
    [
      "run",
      "workerd CPU ms",
      "µs per relayed frame",
      "÷ bare relay",
      "workerd CPU %",
      "bench+simulator CPU %",
      "bench loop lag p99 ms",
      "simulator loop lag p99 ms",
      "RSS KiB per live call",
      "load average after",
    ],
    results.map((result) => {
      const floor = result.target !== "relay" ? relayOf(result) : undefined;
      return [
        label(result),
        result.workerdCpuMs.toFixed(0),
        cpuPerFrame(result).toFixed(1),
        floor ? ratio(cpuPerFrame(result), cpuPerFrame(floor)) : "",
        ((result.workerdCpuMs / result.wallMs) * 100).toFixed(0),
        result.benchCpuPercent.toFixed(0),
        result.loopLagP99Ms.toFixed(1),
        result.simulatorLagP99Ms.toFixed(1),
        Number.isFinite(result.rssPerCallKiB) ? result.rssPerCallKiB.toFixed(0) : "–",
        result.load,
      ];
    }),
  ),
);
if (ROUNDS > 1) {
  const runsOf = (target: Target, count: number) => results.filter((result) => result.target === target && result.calls === count);
  const pooled = (target: Target, count: number, figure: keyof RunResult) =>
    runsOf(target, count).flatMap((result) => pick(result, figure));
  const pooledCpuPerFrame = (target: Target, count: number) => {
    const runs = runsOf(target, count);
    const frames = runs.reduce((total, result) => total + result.framesReceived + result.mediaReceived, 0);
    return (runs.reduce((total, result) => total + result.workerdCpuMs, 0) * 1000) / Math.max(1, frames);
  };
  const rows = COUNTS.flatMap((count) =>
    TARGETS.map((target) => {
      const figures = (["callerToProvider", "providerToCaller", "interruption"] as const).map((figure) => {
        const summary = summarize(pooled(target, count, figure));
        const floor = target !== "relay" ? summarize(pooled("relay", count, figure)) : null;
        const figure50and99 = `${ms(summary?.p50)} / ${ms(summary?.p99)}`;
        return floor ? `${figure50and99} (${ratio(summary?.p50, floor.p50)} / ${ratio(summary?.p99, floor.p99)})` : figure50and99;
      });
      const cpu = pooledCpuPerFrame(target, count);
      const cpuFloor = target !== "relay" ? ` (${ratio(cpu, pooledCpuPerFrame("relay", count))})` : "";
      return [`${target} × ${count}`, ...figures, `${cpu.toFixed(1)}${cpuFloor}`];
    }),
  );
  console.log(
    table(
      `All ${ROUNDS} rounds pooled: p50 / p99 ms (÷ the bare relay)`,
      ["runs", "caller → provider", "provider → caller", "barge-in → clear", "µs per relayed frame"],
      rows,
    ),
  );
}
if (GC) {
  console.log(
    table(
      "V8 garbage collection in each target's isolate (--gc): count / total ms / longest ms; the frames later than the run's caller → provider p99 that a pause of 5 ms or more held",
      ["run", "scavenges", "mark-compacts", "marking ms (mean)", "live MB after", "late frames held by a GC pause"],
      results.map((result) =>
        gcRow(label(result), result.gcPauses, result.callerFrames, summarize(result.callerToProvider)?.p99 ?? Number.POSITIVE_INFINITY),
      ),
    ),
  );
}
if (PERF) {
  console.log(
    table(
      `What held the agent's steady chunks later than ${LATE_MS} ms (--perf): each put down to what took most of its wait on workerd's thread`,
      ["run", "late chunks", ...HOLDS.map((hold) => HOLD_NAMES[hold]), "cppgc sweeps ≥ 2 ms (longest ms)"],
      results.flatMap((result) => {
        const held = result.threadHolds;
        if (!held) return [];
        const byHold = HOLDS.map((hold) => String(held.byHold[hold]));
        return [[label(result), String(held.late), ...byHold, `${held.sweeps} (${held.longestSweepMs.toFixed(1)})`]];
      }),
    ),
  );
}
for (const result of results) {
  if (result.failures.length === 0) continue;
  const counts = new Map<string, number>();
  for (const failure of result.failures) counts.set(failure.slice(0, 160), (counts.get(failure.slice(0, 160)) ?? 0) + 1);
  console.log(`\n${label(result)}: ${result.failures.length} of ${result.calls} calls failed:`);
  for (const [failure, count] of counts) console.log(`  ${count} × ${failure}`);
}
