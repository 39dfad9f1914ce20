import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unstable_startWorker } from "wrangler";
import { localDevOptions } from "../../node/support/local-platform.ts";

export interface RunningRelay {
  url: string;
  inspectorUrl: string | null;
  stop(): Promise<void>;
}

/**
 * The bare relay (relay.worker.ts) under wrangler's local workerd, talking to the provider simulator named in
 * `simulatorSettings`, its state in a fresh directory under the system's temporary one (on disk, as the platform's),
 * removed when it stops.
 */
export async function startRelay(simulatorSettings: Record<string, string>, options: { inspector?: boolean } = {}): Promise<RunningRelay> {
  // As quiet as the platform's runs (bench-platform.ts): wrangler echoes every request line otherwise.
  process.env.WRANGLER_LOG = process.env.BENCH_WRANGLER_LOG ?? "error";
  const persistTo = mkdtempSync(join(tmpdir(), "switchboard-relay-"));
  const worker = await unstable_startWorker({
    config: join(import.meta.dirname, "wrangler.toml"),
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
