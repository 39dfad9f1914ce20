/**
 * What a call costs workerd apart from its audio: `node test/bench/call-setup.bench.ts [--calls 100] [--rounds 2]`
 * (`npm run bench` runs it). The load bench's CPU per relayed frame spreads a call's setup and end over its frames;
 * this prices them on their own, on the same stack and simulators, for the bare relay and the platform in turn (a
 * fresh worker each round, state on disk). N Twilio calls at the load bench's pace (10 a second), in three phases,
 * each measured as workerd's utime + stime (/proc) from its first request to the end of a quiet time after its last:
 * 1. voice webhooks: each call's signed webhook → TwiML, then 1.5 s. The platform creates the call's object, takes
 *    its admission slot, writes its record (D1 too) and dials its provider here.
 * 2. media streams: each call's upgrade, `connected` and `start`, then 2.5 s (the relay dials its provider here; the
 *    platform's start reaches D1 within 2 s).
 * 3. ends: `stop`, the socket closed, the `completed` status callback, then 5 s (the platform's end batch to D1, the
 *    slot's release, its metrics, and the post-call analysis 2 s after the end).
 * No audio is sent. A warm-up of 10 calls runs first on each worker. Prints each round and the means; asserts nothing.
 */
import { spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { loadBenchSettings, startBenchPlatform, stopBenchCarriers } from "./bench-platform.ts";
import { option } from "./options.ts";
import { startRelay } from "./relay/start-relay.ts";
import { startSimulatorThread } from "./simulator-thread.ts";
import { answerCall, type CallState, finishCall, newCall, openMediaStream, type StreamAnswer, table } from "./twilio-side.ts";
import { workerdCpuMeter } from "./workerd-proc.ts";

type Target = "relay" | "platform";
const PHASES = ["voice webhooks", "media streams", "ends"] as const;
type Costs = Record<(typeof PHASES)[number], number>;

const CALLS = Number(option("calls", "100"));
const ROUNDS = Number(option("rounds", "2"));
if (!(Number.isInteger(CALLS) && CALLS >= 10 && CALLS <= 1000)) throw new Error("--calls: 10..1000");
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1 && ROUNDS <= 10)) throw new Error("--rounds: 1..10");
const NUMBER = "+15550177001";
const PACE_MS = 100;
const WARM_UP_CALLS = 10;
const QUIET_MS: Costs = { "voice webhooks": 1_500, "media streams": 2_500, ends: 5_000 };

process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
process.env.WRANGLER_SEND_METRICS ??= "false";
// As the load bench: wrangler's local trace collector off for both (load.bench.ts, `--trace-collector`).
process.env.X_LOCAL_OBSERVABILITY = "false";

const simulator = await startSimulatorThread({ maxRecordedEntries: 50_000 });
const settings = await loadBenchSettings(() => simulator.settings);

let nextCall = 0;

/** Runs `step` for every call, one every PACE_MS, then waits `quietMs`; workerd's CPU over it, per call. */
async function phase(calls: CallState[], step: (call: CallState) => Promise<void>, quietMs: number, failures: string[]): Promise<number> {
  const workerdCpu = workerdCpuMeter();
  await Promise.all(
    calls.map(async (call, index) => {
      await sleep(index * PACE_MS);
      await step(call).catch((error: unknown) => failures.push(error instanceof Error ? error.message : String(error)));
    }),
  );
  await sleep(quietMs);
  return workerdCpu.read(`  ${calls.length} calls`) / calls.length;
}

async function callsCost(url: string, count: number, failures: string[]): Promise<Costs> {
  const calls = Array.from({ length: count }, () =>
    newCall(`setup-${nextCall++}`, `198.18.${Math.floor(nextCall / 250) % 256}.${(nextCall % 250) + 1}`, 0),
  );
  await Promise.all(calls.map((call) => simulator.setScenario(call.key, { replies: ["Hello."] })));
  const answers = new Map<CallState, StreamAnswer>();
  const answer = async (call: CallState) => void answers.set(call, await answerCall(url, call, NUMBER));
  const stream = async (call: CallState) => {
    const answered = answers.get(call);
    if (answered) await openMediaStream(url, call, answered, () => undefined);
  };
  const end = async (call: CallState) => {
    if (call.phase === "streaming") await finishCall(url, call, NUMBER);
  };
  return {
    "voice webhooks": await phase(calls, answer, QUIET_MS["voice webhooks"], failures),
    "media streams": await phase(calls, stream, QUIET_MS["media streams"], failures),
    ends: await phase(calls, end, QUIET_MS.ends, failures),
  };
}

async function start(target: Target) {
  if (target === "relay") return startRelay(settings);
  return (await startBenchPlatform(settings, { openai: NUMBER }, { tenantSettings: { recording: "off" } })).platform;
}

const results: Array<{ target: Target; round: number; costs: Costs; failures: string[] }> = [];
try {
  console.log(
    `\nWhat a call costs workerd apart from its audio — node test/bench/call-setup.bench.ts --calls ${CALLS} --rounds ${ROUNDS}\n` +
      `${CALLS} Twilio calls ${1000 / PACE_MS} a second, no audio; workerd CPU per call in each phase (quiet after each: ` +
      `${PHASES.map((name) => `${name} ${QUIET_MS[name] / 1000} s`).join(", ")}); the targets in turn, a fresh worker each round.`,
  );
  for (let round = 1; round <= ROUNDS; round++) {
    for (const target of ["relay", "platform"] as const) {
      const running = await start(target);
      try {
        await callsCost(running.url, WARM_UP_CALLS, []);
        const failures: string[] = [];
        results.push({ target, round, costs: await callsCost(running.url, CALLS, failures), failures });
        console.log(`  ${target}, round ${round}: ${CALLS - failures.length} of ${CALLS} calls set up and ended`);
      } finally {
        await running.stop();
      }
      spawnSync("sync");
      await sleep(5_000);
    }
  }
} finally {
  await simulator.stop();
  await stopBenchCarriers();
}

const total = (costs: Costs) => PHASES.reduce((sum, name) => sum + costs[name], 0);
const mean = (target: Target, pick: (costs: Costs) => number) => {
  const runs = results.filter((result) => result.target === target);
  return runs.reduce((sum, result) => sum + pick(result.costs), 0) / runs.length;
};
const rows = results.map(({ target, round, costs, failures }) => [
  `${target}, round ${round}`,
  ...PHASES.map((name) => costs[name].toFixed(2)),
  total(costs).toFixed(2),
  String(failures.length),
]);
const means = (target: Target) => [...PHASES.map((name) => mean(target, (costs) => costs[name])), mean(target, total)];
const [relay, platform] = [means("relay"), means("platform")];
rows.push(["relay, mean", ...relay.map((ms) => ms.toFixed(2)), "–"]);
rows.push(["platform, mean", ...platform.map((ms) => ms.toFixed(2)), "–"]);
rows.push(["platform − relay", ...platform.map((ms, index) => (ms - relay[index]!).toFixed(2)), "–"]);
console.log(table("workerd CPU per call, ms (utime + stime)", ["run", ...PHASES, "the whole call", "failed calls"], rows));
for (const { target, round, failures } of results) {
  if (failures.length > 0) console.log(`  ${target}, round ${round}, first failure: ${failures[0]}`);
}
process.exit(0);
