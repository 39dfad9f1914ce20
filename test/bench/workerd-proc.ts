import { readdirSync, readFileSync } from "node:fs";

/**
 * workerd's CPU and memory from /proc, for the benches that start it through wrangler: CPU time is what a busy
 * machine disturbs least (wall-clock figures queue behind every other process).
 */

/** The workerd processes descended from this one (wrangler runs workerd as a child of this process). */
export function workerdPids(): number[] {
  const parents = new Map<number, { ppid: number; comm: string }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      parents.set(Number(entry), { ppid: Number(stat.slice(close + 2).split(" ")[1]), comm: stat.slice(stat.indexOf("(") + 1, close) });
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
export const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN);
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, 100 ticks a second on Linux
}
