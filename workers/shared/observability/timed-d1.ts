import { metrics } from "./metrics.ts";

type Op = "read" | "write" | "batch";
const RAW = Symbol("raw statement");
type TimedStatement = D1PreparedStatement & { [RAW]: D1PreparedStatement };

async function timed<T>(op: Op, run: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await run();
  } finally {
    metrics.observe("d1_query_duration_seconds", { op }, (Date.now() - started) / 1000);
  }
}

function timedStatement(statement: D1PreparedStatement): TimedStatement {
  return new Proxy(statement, {
    get(target, prop) {
      if (prop === RAW) return target;
      if (prop === "bind") return (...values: unknown[]) => timedStatement(target.bind(...values));
      if (prop === "run") return () => timed("write", () => target.run());
      if (prop === "all" || prop === "first" || prop === "raw")
        return (...args: unknown[]) => timed("read", () => (target[prop] as (...a: unknown[]) => Promise<unknown>).apply(target, args));
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as TimedStatement;
}

const unwrap = (statement: D1PreparedStatement): D1PreparedStatement => (statement as Partial<TimedStatement>)[RAW] ?? statement;

/**
 * The D1 binding with every round trip timed into `d1_query_duration_seconds{op}` (read, write, batch). A wrapper
 * rather than timing at each call site: drizzle and the compiled writes all reach D1 through this one handle.
 */
export function timedD1(binding: D1Database): D1Database {
  return new Proxy(binding, {
    get(target, prop) {
      if (prop === "prepare") return (query: string) => timedStatement(target.prepare(query));
      if (prop === "batch") return (statements: D1PreparedStatement[]) => timed("batch", () => target.batch(statements.map(unwrap)));
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
