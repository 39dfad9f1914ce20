/**
 * What recording adds to a call in workerd, apart from everything else the call does: `node
 * test/bench/recording.bench.ts [--calls 50] [--seconds 30]`. Runs test/bench/recording/recording-bench.worker.ts (N sessions'
 * CallRecording fed real-time Twilio traffic, their uploads to a local R2 on disk, their ends) with recording off,
 * then on, on a fresh local workerd each, and prints workerd's CPU time (utime + stime, which a busy machine disturbs
 * least) per relayed frame for both and their difference. Asserts nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_startWorker } from "wrangler";
import { option } from "./options.ts";
import { workerdCpuMeter } from "./workerd-proc.ts";

const CALLS = Number(option("calls", "50"));
const SECONDS = Number(option("seconds", "30"));

async function measure(recording: "on" | "off"): Promise<{ cpuMs: number; relayedFrames: number; objects: number }> {
  // A config of its own: left to itself, wrangler would find the project's wrangler.toml and all its bindings.
  const directory = mkdtempSync(join(tmpdir(), "switchboard-recording-bench-"));
  const configPath = join(directory, "wrangler.json");
  writeFileSync(
    configPath,
    JSON.stringify({
      name: "switchboard-recording-bench",
      main: fileURLToPath(new URL("./recording/recording-bench.worker.ts", import.meta.url)),
      compatibility_date: "2026-08-01", // as in wrangler.toml
      compatibility_flags: ["nodejs_compat"],
      // As the platform (wrangler.toml): locally every R2 and D1 request is then also a span in wrangler's trace store.
      observability: { enabled: true },
      r2_buckets: [{ binding: "RECORDINGS", bucket_name: "bench-recordings" }],
      d1_databases: [{ binding: "DB", database_name: "bench", database_id: "00000000-0000-0000-0000-000000000000" }],
    }),
  );
  process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
  const worker = await unstable_startWorker({
    config: configPath,
    dev: { server: { port: 0 }, inspector: false, persist: join(directory, "state"), watch: false, logLevel: "warn" },
  });
  try {
    await worker.ready;
    const workerdCpu = workerdCpuMeter();
    const response = await worker.fetch(`http://bench.local/?calls=${CALLS}&seconds=${SECONDS}&recording=${recording}`);
    const result = (await response.json()) as { relayedFrames: number; objects: number };
    return { cpuMs: workerdCpu.read(`recording ${recording}`), ...result };
  } finally {
    await worker.dispose();
    rmSync(directory, { recursive: true, force: true });
  }
}

const off = await measure("off");
const on = await measure("on");
const perFrame = (ms: number, frames: number) => ((ms * 1000) / frames).toFixed(1);
console.log(
  `\nRecording's own cost in workerd: ${CALLS} sessions × ${SECONDS} s of Twilio traffic (load average ${(await import("node:os"))
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")})`,
);
console.log("| recording | workerd CPU ms | µs per relayed frame | R2 objects left |");
console.log("|---|--:|--:|--:|");
console.log(`| off | ${off.cpuMs} | ${perFrame(off.cpuMs, off.relayedFrames)} | ${off.objects} |`);
console.log(`| on | ${on.cpuMs} | ${perFrame(on.cpuMs, on.relayedFrames)} | ${on.objects} |`);
console.log(`recording adds ${perFrame(on.cpuMs - off.cpuMs, on.relayedFrames)} µs of workerd CPU per relayed frame`);
