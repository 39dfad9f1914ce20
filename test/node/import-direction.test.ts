import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * One import direction, checked on the source. The Worker (`workers/`) reaches the objects only through their RPC
 * types (`import type`), but for `workers/index.ts`, which exports the classes for wrangler. The objects import from
 * `workers/` only the libraries both share — `workers/shared/` (settings, schema and db access, logging, errors,
 * the live and provider-health protocols), `workers/carriers/` (one folder per carrier behind the `Carrier` interface, and its registry) and
 * `workers/business/` (the business engine a voice agent's tools, WhatsApp and the REST routes all reach) — and those
 * import no object; the business engine imports only the shared library and the carriers. Inside the objects, `voice/` uses `media/` and never the other way round.
 */
const ROOT = join(import.meta.dirname, "../..");

interface ImportEdge {
  from: string;
  to: string;
  typeOnly: boolean;
}

const IMPORT = /^\s*(import|export)\s+(type\s+)?([^"';]*?)\s*from\s*"(\.{1,2}\/[^"]+)"/gm;

function importsOf(file: string, source: string): ImportEdge[] {
  return [...source.matchAll(IMPORT)].map((match) => {
    const clause = match[3] ?? "";
    const names = clause
      .match(/^\{([^}]*)\}$/)?.[1]
      ?.split(",")
      .map((name) => name.trim())
      .filter(Boolean);
    const typeOnly = Boolean(match[2]) || (names !== undefined && names.length > 0 && names.every((name) => name.startsWith("type ")));
    return { from: file, to: normalize(join(dirname(file), match[4]!)).replace(/\.ts$/, ""), typeOnly };
  });
}

const under = (path: string, folder: string) => path === folder || path.startsWith(`${folder}/`);

/** Every edge that breaks the direction, described. */
function violations(edges: ImportEdge[]): string[] {
  const problems: string[] = [];
  for (const { from, to, typeOnly } of edges) {
    const edge = `${from} → ${to}`;
    if (under(from, "workers/shared") && !under(to, "workers/shared")) problems.push(`shared library imports its importer: ${edge}`);
    if ((under(from, "workers/carriers") || under(from, "workers/business")) && under(to, "durable-objects")) {
      problems.push(`library imports an object: ${edge}`);
    }
    if (under(from, "workers") && under(to, "durable-objects") && !typeOnly && from !== "workers/index.ts") {
      problems.push(`the Worker reaches an object other than through its types: ${edge}`);
    }
    if (
      under(from, "workers/business") &&
      under(to, "workers") &&
      !["workers/shared", "workers/carriers", "workers/business"].some((lib) => under(to, lib))
    ) {
      problems.push(`business engine imports the Worker: ${edge}`);
    }
    if (
      under(from, "durable-objects") &&
      under(to, "workers") &&
      !["workers/shared", "workers/carriers", "workers/business"].some((lib) => under(to, lib))
    ) {
      problems.push(`an object imports the Worker: ${edge}`);
    }
    if (under(from, "durable-objects/media") && under(to, "durable-objects/voice")) problems.push(`media imports voice: ${edge}`);
  }
  return problems;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

describe("import direction", () => {
  it("holds across workers/ and durable-objects/", () => {
    const files = [...sourceFiles("workers"), ...sourceFiles("durable-objects")];
    const edges = files.flatMap((file) => importsOf(file, readFileSync(join(ROOT, file), "utf8")));
    expect(files.length).toBeGreaterThan(50);
    expect(edges.filter((edge) => under(edge.from, "durable-objects") && under(edge.to, "workers/shared")).length).toBeGreaterThan(10);
    expect(violations(edges)).toEqual([]);
  });

  it("would catch each kind of wrong edge", () => {
    const edges = [
      ...importsOf("workers/shared/settings.ts", 'import { x } from "../routes/sessions";'),
      ...importsOf("workers/routes/sessions.ts", 'import { CallSession } from "../../durable-objects/call-session";'),
      ...importsOf("workers/routes/calls.ts", 'import { type A, B } from "../../durable-objects/call/call-commands";'),
      ...importsOf("durable-objects/call-session.ts", 'import { app } from "../workers/app";'),
      ...importsOf("durable-objects/media/media-sockets.ts", 'import type { X } from "../voice/voice-session";'),
      ...importsOf("workers/carriers/call-events.ts", 'import type { Y } from "../../durable-objects/call/state-machine";'),
      ...importsOf("workers/business/invoices.ts", 'import { z } from "../routes/invoices";'),
    ];
    expect(violations(edges)).toHaveLength(7);
    expect(violations(importsOf("workers/routes/calls.ts", 'import type { A } from "../../durable-objects/call/call-commands";'))).toEqual(
      [],
    );
    expect(violations(importsOf("workers/routes/calls.ts", 'import { type A, type B } from "../../durable-objects/x";'))).toEqual([]);
  });
});
