import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where the D1 commands of the operator tools run: the local emulation (optionally persisted elsewhere) or production. */
export type Target = { kind: "local"; persistTo?: string } | { kind: "remote" };

const targetFlags = (target: Target) =>
  target.kind === "remote" ? ["--remote"] : ["--local", ...(target.persistTo ? ["--persist-to", target.persistTo] : [])];

/** Runs wrangler with the project's Node; its chatter goes to stderr so stdout stays machine-readable. */
export function wrangler(args: string[], options: { inherit?: boolean } = {}): string {
  const result = spawnSync(process.execPath, [join(import.meta.dirname, "../../node_modules/wrangler/bin/wrangler.js"), ...args], {
    encoding: "utf8",
    stdio: options.inherit ? "inherit" : ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  if (result.status !== 0) {
    if (!options.inherit) process.stderr.write(`${result.stdout ?? ""}${result.stderr ?? ""}`);
    throw new Error(`wrangler ${args[0]} ${args[1] ?? ""} failed (exit ${result.status})`);
  }
  return result.stdout ?? "";
}

export function applyMigrations(target: Target): void {
  wrangler(["d1", "migrations", "apply", "DB", ...targetFlags(target)]);
}

/** Executes SQL statements as one file (D1 runs a file as a batch). */
export function executeSql(target: Target, sql: string): void {
  const dir = mkdtempSync(join(tmpdir(), "switchboard-sql-"));
  try {
    const file = join(dir, "statements.sql");
    writeFileSync(file, sql);
    wrangler(["d1", "execute", "DB", ...targetFlags(target), "--file", file, "--yes"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function querySql<Row>(target: Target, sql: string): Row[] {
  const output = wrangler(["d1", "execute", "DB", ...targetFlags(target), "--command", sql, "--json", "--yes"]);
  const parsed = JSON.parse(output) as Array<{ results: Row[] }>;
  return parsed.flatMap((result) => result.results);
}

/** SQL string literal: the only escaping SQLite needs inside single quotes. */
export const sqlText = (value: string) => `'${value.replace(/'/g, "''")}'`;
