/**
 * Platform-added latency of whole Twilio calls: `node test/bench/call-latency.bench.ts [--runs openai:1,openai:100]`
 * (`npm run bench` runs it after audio.bench.ts). The real Worker (wrangler.toml) runs locally under wrangler on a
 * seeded D1 (test/node/support/local-platform.ts); the voice AI side is the provider simulator; Twilio's side is
 * written here with `ws`, light per frame. Every call: signed voice webhook → TwiML → signed media upgrade →
 * connected/start → 20 ms µ-law frames in real time (recorded speech) → marks echoed as they "play" → stop →
 * `completed` status callback. All clocks are `performance.timeOrigin + performance.now()` in this one process, the
 * clock the simulator's recorder uses, so times taken at both simulators compare directly.
 *
 * Figures, each p50/p99/max/count:
 * - caller → provider: arrival of caller frame i at the simulator − its send by the carrier side (1:1 by index);
 * - provider → caller: arrival of agent media message k on the carrier socket − the simulator's send of chunk k;
 * - interruption: the simulator's barge-in (speech started while agent audio plays) → `clear` on the carrier socket;
 * - memory: workerd's VmRSS with N live calls minus before, divided by N.
 * Prints tables; asserts nothing about time. Bounded: every call and every run has a deadline; all closes itself.
 * Options: `--runs provider:calls,…`, `--ramp-per-second N`, `--state-on-disk`; BENCH_DEBUG=1 prints each call's late
 * frames and chunks with their send times, BENCH_WRANGLER_LOG=warn shows the worker's warnings.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { FRAME_MS, readWav, SAMPLES_PER_FRAME } from "../simulators/carriers/audio.ts";
import { uuid } from "../simulators/carriers/ids.ts";
import { type ConnectionSnapshot, providerSimulatorSettings, startProviderSimulator } from "../simulators/providers/index.ts";
import { testSettings } from "../support/test-settings.ts";
import type { LocalPlatform } from "../node/support/local-platform.ts";
import { startBenchPlatform } from "./bench-platform.ts";
import {
  type CallState,
  finishCall,
  framePayloads,
  HANDSHAKE_TIMEOUT_MS,
  ms,
  newCall,
  pumpFrames,
  startCall,
  summarize,
  table,
  WEBHOOK_TIMEOUT_MS,
} from "./twilio-side.ts";

type Provider = "openai" | "gemini";
interface RunSpec {
  provider: Provider;
  calls: number;
}

const DEFAULT_RUNS = "openai:1,openai:100,openai:500,gemini:1,gemini:100";
const runsArgument = process.argv.includes("--runs") ? process.argv[process.argv.indexOf("--runs") + 1] : undefined;
const RUNS: RunSpec[] = (runsArgument ?? process.env.BENCH_CALL_RUNS ?? DEFAULT_RUNS).split(",").map((entry) => {
  const [provider, calls] = entry.split(":");
  if ((provider !== "openai" && provider !== "gemini") || !Number.isInteger(Number(calls)) || Number(calls) < 1 || Number(calls) > 2000) {
    throw new Error(`--runs: expected provider:calls (openai|gemini, 1..2000), got ${entry}`);
  }
  return { provider, calls: Number(calls) };
});

const NUMBERS: Record<Provider, string> = { openai: "+15550177001", gemini: "+15550177002" };
/**
 * Calls start spread over this long (webhook → stream): at most RAMP_CALLS_PER_SECOND new calls a second, and at
 * least 2 s. The platform sets calls up at a bounded rate on this machine (see the notes printed with the results);
 * `--ramp-per-second 50` starts 100 calls within 2 s. Each call then repeats its script until every call of the
 * run has been live together for at least one whole script.
 */
const rampArgument = process.argv.includes("--ramp-per-second") ? Number(process.argv[process.argv.indexOf("--ramp-per-second") + 1]) : 10;
if (!(rampArgument > 0 && rampArgument <= 1000)) throw new Error("--ramp-per-second: expected 1..1000");
const RAMP_CALLS_PER_SECOND = rampArgument;
const STAGGER_MS = (calls: number) => (calls <= 1 ? 0 : Math.max(2000, (calls / RAMP_CALLS_PER_SECOND) * 1000));
/** After its last frame a call waits this long for the agent's last audio and marks, then stops. */
const TAIL_WAIT_MS = 500;
const TICK_MS = 5;

// ── the caller's audio: recorded speech, one utterance answered, then one that talks over the agent's reply ──

const AUDIO = join(import.meta.dirname, "../fixtures/audio");
const wav = (name: string) => readWav(readFileSync(join(AUDIO, name)));
const silence = (ms: number) => new Int16Array((ms * 8000) / 1000);
/** hello → the agent answers (LONG_REPLY, ~5 s of audio, played in real time here) → 1.5 s after hello the caller
 * starts "Wait, wait. Sorry to interrupt…" while that reply plays: a barge-in → the agent answers again → silence. */
const SCRIPT_PARTS = [wav("caller-hello.wav"), silence(1500), wav("caller-interrupt.wav"), silence(3000)];
const LONG_REPLY = "Of course. Your balance is one hundred and twenty dollars, and your next bill is due on the first.";
const SHORT_REPLY = "Sure, let me transfer you to a person now.";
const scriptSamples = new Int16Array(SCRIPT_PARTS.reduce((total, part) => total + part.length, 0));
SCRIPT_PARTS.reduce((offset, part) => (scriptSamples.set(part, offset), offset + part.length), 0);
const CYCLE_FRAMES = Math.floor(scriptSamples.length / SAMPLES_PER_FRAME);
/** base64 µ-law payload of every frame, encoded once: the same speech for every call. */
const PAYLOADS: string[] = framePayloads(scriptSamples);
const CYCLE_MS = CYCLE_FRAMES * FRAME_MS;
/** Script repetitions per call so that all calls of a run overlap for at least one whole script. */
const cyclesFor = (calls: number) => 1 + Math.ceil(STAGGER_MS(calls) / CYCLE_MS);

// ── workerd's memory and CPU, from /proc ────────────────────────────────────────────────────────────────────

/** The workerd processes descended from this one (miniflare spawns workerd under wrangler, in this process). */
function workerdPids(): number[] {
  const parents = new Map<number, { ppid: number; comm: string }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      parents.set(Number(entry), { ppid, comm });
    } catch {
      // the process ended meanwhile
    }
  }
  const descends = (pid: number) => {
    for (let hops = 0, current = pid; hops < 16 && current > 1; hops++) {
      current = parents.get(current)?.ppid ?? 0;
      if (current === process.pid) return true;
    }
    return false;
  };
  return [...parents].filter(([pid, info]) => info.comm === "workerd" && descends(pid)).map(([pid]) => pid);
}

function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) : Number.NaN;
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100 per second on Linux)
}

// ── one run: N concurrent calls ─────────────────────────────────────────────────────────────────────────────

interface RunResult {
  spec: RunSpec;
  loadBefore: string;
  loadAfter: string;
  callerToProvider: number[];
  providerToCaller: number[];
  interruption: number[];
  framesSent: number;
  framesReceived: number;
  callsWithLostFrames: number;
  chunksSent: number;
  mediaReceived: number;
  callsWithChunkMismatch: number;
  bargeIns: number;
  bargeInsWithoutClear: number;
  failures: string[];
  callsOk: number;
  webhookMs: number[];
  rssBeforeKiB: number;
  rssLiveKiB: number;
  liveAtPeak: number;
  workerdCpuPercent: number;
  benchCpuPercent: number;
  loopLagP99Ms: number;
  wallMs: number;
}

async function runCalls(platformUrl: string, control: Awaited<ReturnType<typeof startProviderSimulator>>["control"], spec: RunSpec, runIndex: number): Promise<RunResult> {
  const to = NUMBERS[spec.provider];
  const frameCount = CYCLE_FRAMES * cyclesFor(spec.calls);
  const replies = Array.from({ length: 2 * cyclesFor(spec.calls) }, (_, index) => (index % 2 === 0 ? LONG_REPLY : SHORT_REPLY));
  const calls: CallState[] = Array.from({ length: spec.calls }, (_, index) =>
    newCall(
      `bench-${runIndex}-${spec.provider}-${spec.calls}-${index}-${uuid().slice(0, 8)}`,
      // 198.18.0.0/15: the address block reserved for benchmarks (RFC 2544); one source per simulated call.
      `198.18.${(runIndex * 8 + Math.floor(index / 250)) % 256}.${(index % 250) + 1}`,
      frameCount,
    ),
  );
  for (const call of calls) control.setScenario(call.key, { replies });

  const workerd = workerdPids();
  const rss = () => workerd.reduce((total, pid) => total + rssKiB(pid), 0);
  const cpu = () => workerd.reduce((total, pid) => total + cpuTicks(pid), 0);
  await sleep(1000); // let the previous run's sockets and timers settle
  const rssBeforeKiB = rss();
  const loadBefore = loadAverage();
  const cpuBefore = cpu();
  const benchCpuBefore = process.cpuUsage();
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();

  const started = performance.now();
  const staggerMs = STAGGER_MS(spec.calls);
  const deadline = started + staggerMs + WEBHOOK_TIMEOUT_MS + HANDSHAKE_TIMEOUT_MS + frameCount * FRAME_MS + 30_000;
  let streaming = 0;
  let rssLiveKiB = 0;
  let liveAtPeak = 0;
  const finishing: Promise<void>[] = [];
  const launches = calls.map(async (call, index) => {
    await sleep((staggerMs * index) / Math.max(1, spec.calls - 1));
    try {
      await startCall(platformUrl, call, to, () => streaming++);
    } catch (error) {
      call.failure ??= String(error instanceof Error ? error.message : error);
      call.phase = "done";
      call.socket?.terminate();
    }
  });

  // The pump: frames in real time for every streaming call, a tail for late agent audio, then stop + completed.
  for (;;) {
    pumpFrames(calls, (_call, index) => PAYLOADS[index % CYCLE_FRAMES]!);
    const now = performance.now();
    for (const call of calls) {
      if (call.phase === "tail" && now >= call.streamStartedAt + call.frameCount * FRAME_MS + TAIL_WAIT_MS) {
        streaming--;
        finishing.push(finishCall(platformUrl, call, to));
      }
    }
    // Memory with every call live: sampled while all N stream (twice a second is plenty).
    if (streaming > liveAtPeak || (streaming === liveAtPeak && streaming > 0 && Math.floor(now / 500) !== Math.floor((now - TICK_MS) / 500))) {
      const sample = rss();
      if (streaming > liveAtPeak || sample > rssLiveKiB) rssLiveKiB = sample;
      liveAtPeak = Math.max(liveAtPeak, streaming);
    }
    if (calls.every((call) => call.phase === "done")) break;
    if (now > deadline) {
      for (const call of calls) {
        if (call.phase !== "done") {
          call.failure ??= `still ${call.phase} at the run's deadline`;
          call.phase = "done";
          call.socket?.terminate();
        }
      }
      break;
    }
    await sleep(TICK_MS);
  }
  await Promise.all(launches);
  await Promise.all(finishing);
  const wallMs = performance.now() - started;
  lag.disable();
  const benchCpu = process.cpuUsage(benchCpuBefore);
  const workerdCpuPercent = ((cpu() - cpuBefore) / 100 / (wallMs / 1000)) * 100;
  await sleep(500); // the simulator sees the last frames and closes

  const result: RunResult = {
    spec,
    loadBefore,
    loadAfter: loadAverage(),
    callerToProvider: [],
    providerToCaller: [],
    interruption: [],
    framesSent: 0,
    framesReceived: 0,
    callsWithLostFrames: 0,
    chunksSent: 0,
    mediaReceived: 0,
    callsWithChunkMismatch: 0,
    bargeIns: 0,
    bargeInsWithoutClear: 0,
    failures: [],
    callsOk: 0,
    webhookMs: calls.flatMap((call) => (call.webhookMs === null ? [] : [call.webhookMs])),
    rssBeforeKiB,
    rssLiveKiB,
    liveAtPeak,
    workerdCpuPercent,
    benchCpuPercent: ((benchCpu.user + benchCpu.system) / 1000 / wallMs) * 100,
    loopLagP99Ms: lag.percentile(99) / 1e6,
    wallMs,
  };
  for (const call of calls) {
    if (call.failure) result.failures.push(call.failure);
    else result.callsOk++;
    const connections: ConnectionSnapshot[] = control.sessions(call.key).filter((connection) => connection.refusedWithStatus === null);
    control.clearSessions(call.key);
    control.clearScenario(call.key);
    // caller → provider: frame i sent ↔ frame i received (pass-through / 1:1 transcoding keeps frames whole, in order).
    const sent = call.nextFrame;
    const arrivals = connections.flatMap((connection) => connection.audioIn.frameTimes.entries);
    const received = connections.reduce((total, connection) => total + connection.audioIn.frames, 0);
    result.framesSent += sent;
    result.framesReceived += received;
    if (received === sent && arrivals.length === sent) {
      for (let index = 0; index < sent; index++) result.callerToProvider.push(arrivals[index]! - call.sentAt[index]!);
      if (process.env.BENCH_DEBUG) {
        const t0 = call.sentAt[0]!;
        console.log("slow frames (index@sent ms: latency)", Array.from({ length: sent }, (_, i) => i).filter((i) => arrivals[i]! - call.sentAt[i]! > 15).map((i) => `${i}@${(call.sentAt[i]! - t0).toFixed(0)}:${(arrivals[i]! - call.sentAt[i]!).toFixed(0)}`).join(" "));
        for (const c of connections) console.log("turns", JSON.stringify(c.turns.entries.map((t) => (t.speechStoppedAt - t0).toFixed(0))), "responses", JSON.stringify(c.responses.entries.map((r) => [(r.startedAt - t0).toFixed(0), ((r.firstAudioAt ?? 0) - t0).toFixed(0), ((r.finishedAt ?? 0) - t0).toFixed(0), r.outcome])), "bargeIns", JSON.stringify(c.bargeIns.entries.map((b) => (b.at - t0).toFixed(0))), "clears", JSON.stringify(call.clearsAt.map((a) => (a - t0).toFixed(0))));
      }
    } else if (sent > 0) {
      result.callsWithLostFrames++;
    }
    // provider → caller: chunk k sent by the simulator ↔ media message k received here.
    const chunks = connections.flatMap((connection) => connection.audioOut.chunkTimes.entries);
    result.chunksSent += chunks.length;
    result.mediaReceived += call.agentMediaAt.length;
    if (chunks.length === call.agentMediaAt.length) {
      for (let index = 0; index < chunks.length; index++) result.providerToCaller.push(call.agentMediaAt[index]! - chunks[index]!.at);
      if (process.env.BENCH_DEBUG) console.log("slow chunks", chunks.map((c, i) => [i, (c.at - call.sentAt[0]!).toFixed(0), (call.agentMediaAt[i]! - c.at).toFixed(0)]).filter((x) => Number(x[2]) > 15).map((x) => x.join(":")).join(" "));
    } else {
      result.callsWithChunkMismatch++;
    }
    // interruption: each barge-in while agent audio played → the first clear after it.
    for (const bargeIn of connections.flatMap((connection) => connection.bargeIns.entries)) {
      if (!bargeIn.agentAudioPlaying) continue;
      result.bargeIns++;
      const clear = call.clearsAt.find((at) => at >= bargeIn.at);
      if (clear === undefined) result.bargeInsWithoutClear++;
      else result.interruption.push(clear - bargeIn.at);
    }
  }
  return result;
}

// ── main ────────────────────────────────────────────────────────────────────────────────────────────────────

const commandLine = `node ${process.argv.slice(1).map((arg) => arg.replace(process.cwd() + "/", "")).join(" ")}`;
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false"; // offline: skip downloading the Request.cf placeholder
process.env.WRANGLER_SEND_METRICS ??= "false";

/** Why a run does not count as sustained: calls failed, frames lost, or caller audio reaching the provider seconds late. */
function notSustained(result: RunResult): string | null {
  const reasons: string[] = [];
  if (result.failures.length > result.spec.calls * 0.05) reasons.push(`${result.failures.length} of ${result.spec.calls} calls failed`);
  const lost = result.framesSent - result.framesReceived;
  if (lost > result.framesSent * 0.01) reasons.push(`${lost} of ${result.framesSent} caller frames lost`);
  const p50 = summarize(result.callerToProvider)?.p50;
  if (p50 !== undefined && p50 > 1000) reasons.push(`caller → provider p50 ${(p50 / 1000).toFixed(1)} s`);
  return reasons.length ? reasons.join(", ") : null;
}

function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

// The platform's local state (D1, the objects' SQLite) on tmpfs: on this VM's shared disk, fsync latency under other
// processes' I/O reaches the audio path through the objects' output gates (see the notes). `--state-on-disk` keeps it on disk.
const stateOnDisk = process.argv.includes("--state-on-disk");
if (!stateOnDisk && existsSync("/dev/shm")) {
  process.env.TMPDIR = mkdtempSync("/dev/shm/switchboard-bench-");
}
const skipped: string[] = [];
const simulator = await startProviderSimulator();
let platform: LocalPlatform | undefined;
const results: RunResult[] = [];
const settings = await testSettings(() => providerSimulatorSettings(simulator));
// Production's provider resilience, not the test suite's fast time scale (a 2 s reply timeout would turn load into reconnects).
for (const name of ["PROVIDER_RECONNECT_BASE_MS", "PROVIDER_BREAKER_OPEN_SECONDS", "PROVIDER_RESPONSE_TIMEOUT_MS"]) delete settings[name];

/**
 * A fresh platform for every run: its own D1, objects, rate-limit counters and provider-health state, so one run's
 * overload (failed provider connections mark the provider unhealthy for new sessions) cannot steer the next run's calls.
 */
async function startPlatform(): Promise<LocalPlatform> {
  return (await startBenchPlatform(settings, NUMBERS)).platform;
}

try {
  console.log(`\nCall latency through the real Worker (wrangler unstable_startWorker, local workerd) — ${commandLine}`);
  console.log(
    `Script: ${(CYCLE_MS / 1000).toFixed(1)} s of caller audio (${CYCLE_FRAMES} frames of 20 ms µ-law, sent in real time): caller-hello.wav, 1.5 s ` +
      `silence, caller-interrupt.wav (talks over the agent's ~${((LONG_REPLY.length * 60) / 1000).toFixed(1)} s reply), 3 s silence.\n` +
      `Calls start ${RAMP_CALLS_PER_SECOND}/s (at least 2 s apart end to end); each repeats the script until all calls of its run have overlapped for one script.\n` +
      "Every run gets a freshly started platform (seeded local D1, new workerd).",
  );
  // A run the machine cannot sustain is reported with why; the bench then tries half as many calls (three times at
  // most per provider) and skips that provider's larger counts.
  const queue = [...RUNS];
  const notSustainedAt: Partial<Record<Provider, number>> = {};
  const stepDowns: Record<Provider, number> = { openai: 0, gemini: 0 };
  for (let index = 0; queue.length > 0 && index < 20; index++) {
    const spec = queue.shift()!;
    const limit = notSustainedAt[spec.provider];
    if (limit !== undefined && spec.calls >= limit) {
      skipped.push(`${spec.provider} × ${spec.calls} skipped: ${spec.provider} × ${limit} was not sustained on this machine`);
      continue;
    }
    console.log(`  run ${spec.provider} × ${spec.calls}: starts over ${(STAGGER_MS(spec.calls) / 1000).toFixed(1)} s, ${cyclesFor(spec.calls)} script(s) a call, load average ${loadAverage()}…`);
    platform = await startPlatform();
    const result = await runCalls(platform.url, simulator.control, spec, index);
    await platform.stop();
    platform = undefined;
    results.push(result);
    const why = notSustained(result);
    console.log(
      `  ran ${spec.provider} × ${spec.calls}: ${result.callsOk} ok, ${result.failures.length} failed, ${(result.wallMs / 1000).toFixed(1)} s, load average ${result.loadAfter}` +
        (why ? ` — NOT SUSTAINED: ${why}` : ""),
    );
    if (why && spec.calls > 1) {
      notSustainedAt[spec.provider] = spec.calls;
      skipped.push(`${spec.provider} × ${spec.calls} not sustained: ${why}`);
      if (stepDowns[spec.provider]++ < 3 && spec.calls >= 4) queue.unshift({ provider: spec.provider, calls: Math.floor(spec.calls / 2) });
    }
  }
} finally {
  await platform?.stop();
  await simulator.stop();
  if (!stateOnDisk && process.env.TMPDIR?.startsWith("/dev/shm/switchboard-bench-")) rmSync(process.env.TMPDIR, { recursive: true, force: true });
}

const label = (result: RunResult) => `${result.spec.provider} × ${result.spec.calls}`;
const figureRows = (pick: (result: RunResult) => number[]) =>
  results.map((result) => {
    const summary = summarize(pick(result));
    return [label(result), ms(summary?.p50), ms(summary?.p99), ms(summary?.max), String(summary?.count ?? 0)];
  });
const header = ["run (provider × concurrent calls)", "p50 ms", "p99 ms", "max ms", "count"];
console.log(table("Caller → provider (carrier frame sent → provider simulator received)", header, figureRows((result) => result.callerToProvider)));
console.log(
  table(
    "Caller frames",
    ["run", "sent", "received", "lost", "calls with lost frames"],
    results.map((result) => [label(result), String(result.framesSent), String(result.framesReceived), String(result.framesSent - result.framesReceived), String(result.callsWithLostFrames)]),
  ),
);
console.log(table("Provider → caller (provider chunk sent → carrier socket received the media message)", header, figureRows((result) => result.providerToCaller)));
console.log(
  table(
    "Agent audio messages",
    ["run", "chunks sent", "media received", "calls not matched 1:1"],
    results.map((result) => [label(result), String(result.chunksSent), String(result.mediaReceived), String(result.callsWithChunkMismatch)]),
  ),
);
console.log(table("Interruption (provider barge-in event → `clear` on the carrier socket)", header, figureRows((result) => result.interruption)));
console.log(
  table(
    "Barge-ins",
    ["run", "barge-ins while agent audio played", "without a clear"],
    results.map((result) => [label(result), String(result.bargeIns), String(result.bargeInsWithoutClear)]),
  ),
);
console.log(table("Voice webhook round trip (POST → TwiML)", header, figureRows((result) => result.webhookMs)));
console.log(
  table(
    "Memory per live call (workerd VmRSS)",
    ["run", "RSS before MiB", "RSS with calls live MiB", "live calls", "KiB per call"],
    results.map((result) => [
      label(result),
      (result.rssBeforeKiB / 1024).toFixed(1),
      (result.rssLiveKiB / 1024).toFixed(1),
      String(result.liveAtPeak),
      result.liveAtPeak > 0 ? ((result.rssLiveKiB - result.rssBeforeKiB) / result.liveAtPeak).toFixed(0) : "–",
    ]),
  ),
);
console.log(
  table(
    "Load on the machine (2 cores shared by workerd, the provider simulator and this bench's Twilio side)",
    ["run", "workerd CPU %", "bench+simulator CPU %", "bench event-loop lag p99 ms", "load average before → after"],
    results.map((result) => [label(result), result.workerdCpuPercent.toFixed(0), result.benchCpuPercent.toFixed(0), result.loopLagP99Ms.toFixed(1), `${result.loadBefore} → ${result.loadAfter}`]),
  ),
);
console.log(
  "\nNotes:\n" +
    "- 2 cores are shared by workerd (local: one JS thread for the Worker and every call's object), wrangler's dev proxy in\n" +
    "  front of it, the provider simulator and this bench's Twilio side, which share one Node process: its event-loop lag\n" +
    "  (above) adds to every figure. CPU % is of one core (200 % = both). The load average includes whatever else runs.\n" +
    "- All timestamps are performance.timeOrigin + performance.now() in this process, the simulator recorder's clock.\n" +
    `- Local state (D1, the objects' SQLite) is ${stateOnDisk ? "on disk (--state-on-disk)" : "on tmpfs"}. The call's object writes its storage at turn\n` +
    "  ends (transcript, barge-in, breaker, ledger); the output gate holds its outgoing audio until a write is durable, so\n" +
    "  on a busy disk fsync latency shows up on the audio path (run with --state-on-disk to see it).\n" +
    "- Each simulated call sends its own CF-Connecting-IP (198.18.0.0/15): WEBHOOK_LIMITER allows 600 a minute per source\n" +
    "  IP and each call costs three (webhook, media upgrade, status callback); 500 calls from one address would be refused.\n" +
    `- Matching: caller frame i ↔ the simulator's i-th received frame (calls whose counts differ are left out and counted\n` +
    "  as calls with lost frames); agent chunk k ↔ the k-th media message (calls whose counts differ are left out).",
);
for (const line of skipped) console.log(`\n${line}`);
for (const result of results) {
  if (result.failures.length === 0) continue;
  const counts = new Map<string, number>();
  for (const failure of result.failures) counts.set(failure.slice(0, 160), (counts.get(failure.slice(0, 160)) ?? 0) + 1);
  console.log(`\n${label(result)}: ${result.failures.length} of ${result.spec.calls} calls failed:`);
  for (const [failure, count] of counts) console.log(`  ${count} × ${failure}`);
}
