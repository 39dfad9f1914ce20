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
function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, 100 ticks a second on Linux
  } catch {
    return null; // the process ended meanwhile
  }
}

/** workerd's CPU time (ms) since the meter was made. */
export interface WorkerdCpuMeter {
  /** The CPU since the start; prints a line, prefixed with `label`, when workerd processes came or went meanwhile. */
  read(label: string): number;
}

/**
 * A CPU meter over this process's workerds. The processes are listed again at each reading, not only at the start:
 * wrangler starts and restarts workerd processes of its own accord, and a list taken once cannot see one started after
 * it (the likeliest reason some runs read a relay at a quarter of its usual CPU). A workerd that started meanwhile
 * counts from its start; one that ended meanwhile took its CPU since the start with it, which the printed line says.
 */
export function workerdCpuMeter(): WorkerdCpuMeter {
  const start = new Map<number, number>();
  for (const pid of workerdPids()) {
    const ms = cpuMs(pid);
    if (ms !== null) start.set(pid, ms);
  }
  return {
    read(label) {
      let total = 0;
      const started: number[] = [];
      const running = new Set<number>();
      for (const pid of workerdPids()) {
        const ms = cpuMs(pid);
        if (ms === null) continue;
        running.add(pid);
        if (!start.has(pid)) started.push(pid);
        total += ms - (start.get(pid) ?? 0);
      }
      const ended = [...start.keys()].filter((pid) => !running.has(pid));
      if (started.length > 0 || ended.length > 0) {
        const list = (pids: number[]) => (pids.length ? pids.join(", ") : "none");
        console.log(
          `${label}: workerd processes changed during the reading (started: ${list(started)}; ended, their CPU since the start uncounted: ${list(ended)})`,
        );
      }
      return total;
    },
  };
}
