import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The raw database handle can query any tenant's rows, so only the modules whose job is cross-tenant (the db layer
 * itself, identity lookups by email/key/token) may touch it. Everything else receives a TenantScope.
 */
const ROOT = join(import.meta.dirname, "../..");
const SOURCE_DIRS = ["workers", "durable-objects"];
const ALLOWED = [
  /^workers\/shared\/db\//,
  /^workers\/identity\//,
  /^workers\/routes\/auth\.ts$/,
  /^workers\/routes\/health\.ts$/,
  /^workers\/scheduled\.ts$/,
  /^workers\/ops\//,
];
const RAW_ACCESS = [/\bdatabase\(/, /\benv\.DB\b/, /\bdrizzle\(/];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

describe("tenant scope", () => {
  it("no module outside the allowed ones touches the raw database", () => {
    const files = SOURCE_DIRS.flatMap((dir) => sourceFiles(join(ROOT, dir))).map((path) => relative(ROOT, path));
    expect(files.length).toBeGreaterThan(10);
    const offenders = files.filter(
      (file) =>
        !ALLOWED.some((pattern) => pattern.test(file)) &&
        RAW_ACCESS.some((pattern) => pattern.test(readFileSync(join(ROOT, file), "utf8"))),
    );
    expect(offenders).toEqual([]);
  });
});
