/**
 * Customer search benchmark: `node test/bench/search.bench.ts [--sizes 10000,100000] [--queries 300]` (`npm run
 * bench` runs it). Builds a local D1 from the project's migrations (wrangler, the same workerd the platform runs
 * on), grows one tenant to each size with generated customers (test/bench/search/search-data.ts; batched inserts, the
 * search index filled by its triggers), then times searches of mixed kinds (misspelt names, names as a recogniser
 * hears them, phone endings and whole numbers, misspelt nicknames, partial emails) one after another through the
 * real `searchCustomers` (test/bench/search/search-bench.worker.ts), and beside them the floor: one raw FTS MATCH on the
 * same database, for the same queries. Each figure is a whole local HTTP request, so both include the same round
 * trip; beside them workerd's CPU time per query (the worker and its local D1 both run in workerd), which a busy
 * machine disturbs far less than wall-clock time. Prints p50/p95/max per size and kind; asserts nothing about time.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { unstable_startWorker } from "wrangler";
import { ROOT, WRANGLER } from "../node/support/local-platform.ts";
import { option } from "./options.ts";
import { type QueryKind, queryFor } from "./search/search-data.ts";
import { ms, table } from "./twilio-side.ts";
import { workerdCpuMeter } from "./workerd-proc.ts";

const SIZES = option("sizes", "10000,100000").split(",").map(Number);
if (!SIZES.every((size, i) => Number.isInteger(size) && size >= 1 && size <= 1_000_000 && size > (SIZES[i - 1] ?? 0)))
  throw new Error("--sizes: increasing counts of 1..1000000");
const QUERIES = Number(option("queries", "300"));
if (!(Number.isInteger(QUERIES) && QUERIES >= 10 && QUERIES <= 10_000)) throw new Error("--queries: 10..10000");
const WARMUP = 20;
const SEED_CHUNK = 2_000;
const TENANT = "bench-tenant";

const directory = mkdtempSync(join(tmpdir(), "switchboard-search-bench-"));
const config = join(directory, "wrangler.json");
writeFileSync(
  config,
  JSON.stringify({
    name: "switchboard-search-bench",
    main: join(import.meta.dirname, "search/search-bench.worker.ts"),
    compatibility_date: "2026-08-01", // as in wrangler.toml
    compatibility_flags: ["nodejs_compat"],
    d1_databases: [
      {
        binding: "DB",
        database_name: "bench",
        database_id: "00000000-0000-0000-0000-000000000001",
        migrations_dir: join(ROOT, "migrations"),
      },
    ],
  }),
);
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
await promisify(execFile)(
  process.execPath,
  [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", directory, "-c", config],
  {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" },
    timeout: 120_000,
  },
);

const worker = await unstable_startWorker({
  config,
  dev: { server: { hostname: "127.0.0.1", port: 0 }, inspector: false, persist: directory, watch: false, logLevel: "warn" },
});
const origin = (await worker.url).origin;

async function call(path: string, method = "GET"): Promise<{ elapsed: number; body: { indexed?: number } }> {
  const started = performance.now();
  const response = await fetch(`${origin}${path}`, { method });
  const body = (await response.json()) as { indexed?: number };
  const elapsed = performance.now() - started;
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return { elapsed, body };
}
const timed = async (path: string) => (await call(path)).elapsed;

const percentile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
};
/** workerd's CPU time (ms) spent while `work` runs: the worker and its local D1 both live in workerd. */
async function cpuOver(work: () => Promise<void>): Promise<number> {
  const workerdCpu = workerdCpuMeter();
  await work();
  return workerdCpu.read("search");
}
const row = (label: string, values: number[]) => [
  label,
  String(values.length),
  ms(percentile(values, 0.5)),
  ms(percentile(values, 0.95)),
  ms(Math.max(...values)),
];

try {
  let seeded = 0;
  const rows: string[][] = [];
  for (const size of SIZES) {
    const seedStarted = performance.now();
    let indexed: number | undefined;
    for (; seeded < size; seeded += SEED_CHUNK)
      indexed = (await call(`/seed?tenant=${TENANT}&from=${seeded}&count=${Math.min(SEED_CHUNK, size - seeded)}`, "POST")).body.indexed;
    seeded = size;
    if (indexed !== size) throw new Error(`seeded ${size} customers but the index holds ${indexed}`);
    console.log(`  ${size} customers seeded and indexed (${((performance.now() - seedStarted) / 1000).toFixed(1)} s)`);
    const queries = Array.from({ length: QUERIES }, (_, n) => queryFor(size, n));
    for (const { q } of queries.slice(0, WARMUP)) await timed(`/search?tenant=${TENANT}&q=${encodeURIComponent(q)}`);
    const byKind = new Map<QueryKind | "all", number[]>([["all", []]]);
    const searchCpu = await cpuOver(async () => {
      for (const { kind, q } of queries) {
        const elapsed = await timed(`/search?tenant=${TENANT}&q=${encodeURIComponent(q)}`);
        byKind.get("all")!.push(elapsed);
        byKind.set(kind, [...(byKind.get(kind) ?? []), elapsed]);
      }
    });
    const floor: number[] = [];
    const floorCpu = await cpuOver(async () => {
      for (const { q } of queries) floor.push(await timed(`/floor?tenant=${TENANT}&q=${encodeURIComponent(q)}`));
    });
    const perQuery = (cpu: number) => ms(cpu / queries.length);
    for (const [kind, values] of byKind)
      rows.push([...row(`${size} · search · ${kind}`, values), kind === "all" ? perQuery(searchCpu) : ""]);
    rows.push([...row(`${size} · floor: one FTS MATCH`, floor), perQuery(floorCpu)]);
    console.log(`  ${size}: done, load average ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
  }
  console.log(
    table(
      "Customer search, ms per request (local workerd + D1, sequential)",
      ["size · what", "n", "p50", "p95", "max", "workerd CPU / query"],
      rows,
    ),
  );
} finally {
  await worker.dispose();
  rmSync(directory, { recursive: true, force: true });
}
