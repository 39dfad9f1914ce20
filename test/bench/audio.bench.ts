/**
 * Audio hot-path benchmark: `npx node test/bench/audio.bench.ts`. Times the G.711 codecs against the alawmulaw
 * package, the resampler, the payload helpers, whole per-frame paths and the recorder's share of a call, first in
 * Node, then inside workerd (started locally through wrangler), which is where the call objects run. Prints tables;
 * asserts nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_startWorker } from "wrangler";
import { formatTable, type Measured, runAudioBench } from "./audio-bench.worker.ts";

console.log(formatTable(`Node ${process.version}`, runAudioBench()));

// A config of its own: left to itself, wrangler would find the project's wrangler.toml and its bindings.
const configDirectory = mkdtempSync(join(tmpdir(), "switchboard-audio-bench-"));
const configPath = join(configDirectory, "wrangler.json");
writeFileSync(
  configPath,
  JSON.stringify({
    name: "switchboard-audio-bench",
    main: fileURLToPath(new URL("./audio-bench.worker.ts", import.meta.url)),
    compatibility_date: "2026-08-01", // as in wrangler.toml
  }),
);
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false"; // offline: skip downloading the Request.cf placeholder
const worker = await unstable_startWorker({
  config: configPath,
  dev: { server: { port: 0 }, inspector: false, persist: false, watch: false, logLevel: "warn" },
});
try {
  const response = await worker.fetch("http://bench.local/");
  console.log(formatTable("workerd (local, through wrangler)", (await response.json()) as Measured[]));
} finally {
  await worker.dispose();
  rmSync(configDirectory, { recursive: true });
}
