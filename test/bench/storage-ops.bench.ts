/**
 * What one local operation costs workerd: `node test/bench/storage-ops.bench.ts [--count 400]` (`npm run bench` runs
 * it). A call's object pays for its D1 requests, KV reads and writes, RPCs to other objects and SQLite statements on
 * the same workerd thread as every call's frames; this prices each kind in workerd CPU time (utime + stime of the
 * workerd processes ÷ operations, on a disk-backed state directory like the load bench's), beside the floor of a
 * request that does nothing. The figures turn the load bench's span counts (test/bench/FINDINGS.md, items 14–15) into
 * time. Asserts nothing about time.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unstable_startWorker } from "wrangler";
import { localDevOptions } from "../node/support/local-platform.ts";
import { option, quietWrangler } from "./options.ts";
import { table } from "./twilio-side.ts";
import { workerdCpuMeter } from "./workerd-proc.ts";

const COUNT = Number(option("count", "400"));
if (!(Number.isInteger(COUNT) && COUNT >= 40 && COUNT <= 10_000)) throw new Error("--count: 40..10000");
/** Requests in flight at once, each running COUNT ÷ CONCURRENCY operations in a row. */
const CONCURRENCY = 4;
const WARMUP = 20;

const directory = mkdtempSync(join(tmpdir(), "switchboard-ops-bench-"));
quietWrangler();
const worker = await unstable_startWorker({
  config: join(import.meta.dirname, "storage-ops/wrangler.toml"),
  dev: localDevOptions(directory),
});
try {
  const url = (await worker.url).origin;
  const operations = (await (await fetch(`${url}/setup`)).json()) as string[];
  const measure = async (path: (n: number) => string, count: number) => {
    await (await fetch(`${url}${path(WARMUP)}`)).text();
    const workerdCpu = workerdCpuMeter();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        const response = await fetch(`${url}${path(count / CONCURRENCY)}`);
        if (!response.ok) throw new Error(`${path(count)}: HTTP ${response.status}`);
        await response.text();
      }),
    );
    return { cpuUs: (workerdCpu.read(path(count)) * 1000) / count, wallUs: ((performance.now() - started) * 1000) / count };
  };

  const rows: string[][] = [];
  for (const op of operations) {
    const { cpuUs, wallUs } = await measure((n) => `/?op=${encodeURIComponent(op)}&n=${n}`, COUNT);
    rows.push([op, cpuUs.toFixed(0), wallUs.toFixed(0)]);
  }
  // Statements run back to back inside one RPC: the statement alone, without its RPC or commit.
  const statements = await measure((n) => `/statements?n=${n * 50}`, COUNT);
  rows.push(["SQLite statement on an object (inside one RPC)", (statements.cpuUs / 50).toFixed(0), (statements.wallUs / 50).toFixed(0)]);
  console.log(
    table(
      `One local operation, ${COUNT} of each (${CONCURRENCY} requests at once), state on disk in ${directory}: workerd CPU and wall time per operation`,
      ["operation", "CPU µs", "wall µs"],
      rows,
    ),
  );
} finally {
  await worker.dispose();
  rmSync(directory, { recursive: true, force: true });
}
