import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unstable_startWorker } from "wrangler";
import { localDevOptions, ROOT, WRANGLER } from "../../node/support/local-platform.ts";
import { quietWrangler } from "../options.ts";

export interface RunningRelay {
  url: string;
  inspectorUrl: string | null;
  stop(): Promise<void>;
}

export interface RelayOptions {
  inspector?: boolean;
  /**
   * The platform's Worker bundle (wrangler.toml's, built as `wrangler deploy` builds it) evaluated in the relay's
   * isolate and kept reachable, never called: the relay with the platform's code and module state on its heap, so a
   * run separates what the platform's size costs the calls from what its work per call does (test/bench/FINDINGS.md,
   * item 27).
   */
  withPlatformBundle?: boolean;
}

/**
 * The bare relay (relay.worker.ts) under wrangler's local workerd, talking to the provider simulator named in
 * `simulatorSettings`, its state in a fresh directory under the system's temporary one (on disk, as the platform's),
 * removed when it stops.
 */
export async function startRelay(simulatorSettings: Record<string, string>, options: RelayOptions = {}): Promise<RunningRelay> {
  quietWrangler();
  const persistTo = mkdtempSync(join(tmpdir(), "switchboard-relay-"));
  const worker = await unstable_startWorker({
    config: join(import.meta.dirname, "wrangler.toml"),
    ...(options.withPlatformBundle && { entrypoint: entryWithPlatformBundle(persistTo) }),
    bindings: {
      OPENAI_REALTIME_URL: { type: "plain_text", value: simulatorSettings.OPENAI_REALTIME_URL! },
      OPENAI_API_KEY: { type: "secret_text", value: simulatorSettings.OPENAI_API_KEY! },
    },
    dev: localDevOptions(persistTo, options.inspector),
  });
  await worker.ready;
  const inspectorUrl = options.inspector ? ((await worker.inspectorUrl)?.href ?? null) : null;
  return {
    url: (await worker.url).origin,
    inspectorUrl,
    stop: async () => {
      await worker.dispose();
      rmSync(persistTo, { recursive: true, force: true });
    },
  };
}

/** An entry module under `directory`: the relay's exports, plus the platform's bundle imported and kept reachable. */
function entryWithPlatformBundle(directory: string): string {
  const outdir = join(directory, "platform-bundle");
  const build = spawnSync(process.execPath, [WRANGLER, "deploy", "--dry-run", "--outdir", outdir], { cwd: ROOT, encoding: "utf8" });
  if (build.status !== 0) throw new Error(`building the platform's bundle failed: ${build.stderr.slice(-2000)}`);
  const entry = join(directory, "relay-with-platform-bundle.ts");
  writeFileSync(
    entry,
    [
      `export { default, Relay } from ${JSON.stringify(join(import.meta.dirname, "relay.worker.ts"))};`,
      `import * as platform from ${JSON.stringify(join(outdir, "index.js"))};`,
      "(globalThis as Record<string, unknown>).platformBundle = platform;",
      "",
    ].join("\n"),
  );
  return entry;
}
