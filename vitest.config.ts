import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import type { RemoteProxyConnectionString } from "miniflare";
import { defineConfig } from "vitest/config";
import { testSettings } from "./test/support/test-settings.ts";

/**
 * `worker` runs inside workerd with real D1, KV, rate limits and Durable Objects, against the real Worker
 * (wrangler.toml); `worker-short-sessions` is the same with OpenAI sessions that roll over after 3 s, so the
 * rollover before OpenAI's session cap runs in a test, and web sessions nobody joins end after 2 s; `node` holds what must run in Node (operator CLI,
 * simulators, source checks, whole calls through wrangler). Simulated third parties (carriers, AI providers) are
 * started by test/support/global-setup.ts on 127.0.0.1.
 */
const SHORT_SESSIONS = "test/worker/**/*.short-sessions.test.ts";
/** `worker-tight-limits`: the carrier budgets at a test's size, so a test reaches them in a few dozen requests. */
const TIGHT_LIMITS = "test/worker/**/*.tight-limits.test.ts";

/**
 * `worker-kv-down`: KV unreachable for the whole project. A namespace given a remote proxy address is served by
 * miniflare's remote-proxy client, which forwards every operation to that address; nothing ever listens on port 0,
 * so each get, put, delete and list fails as an unreachable KV's does ("Network connection lost"). Records merge by
 * key over wrangler.toml's, so this CACHE replaces the local one. workerd also logs each failure as an uncaught
 * exception of the proxy worker: expected noise in this project's output.
 */
const KV_DOWN = "test/worker/**/*.kv-down.test.ts";
/**
 * `worker-bad-recording-key`: RECORDING_SIGNING_KEY too short to be a key, so recording links fail closed while
 * sessions are still recorded.
 */
const BAD_RECORDING_KEY = "test/worker/**/*.bad-recording-key.test.ts";
/**
 * `worker-shedding`: load shedding on, at 500 ms of lateness, for the tests that overload their isolate on purpose. Every
 * other project runs with shedding off (test/support/test-settings.ts), so a slow moment of a busy machine never
 * turns one of their calls away.
 */
const SHEDDING = "test/worker/**/*.shedding.test.ts";
const UNREACHABLE_KV = {
  CACHE: {
    id: "00000000000000000000000000000000",
    remoteProxyConnectionString: new URL("http://127.0.0.1:0") as RemoteProxyConnectionString,
  },
};

type RateLimits = Record<string, { namespace_id: string; simple: { limit: number; period: 60 } }>;

function workerProject(
  name: string,
  include: string[],
  exclude: string[],
  settings: Record<string, string> = {},
  ratelimits: RateLimits = {},
  kvNamespaces: Record<string, { id: string; remoteProxyConnectionString: RemoteProxyConnectionString }> = {},
) {
  return {
    plugins: [
      cloudflareTest(async ({ inject }) => ({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: { ...(await testSettings(inject)), ...settings, TEST_MIGRATIONS: await readD1Migrations("./migrations") },
          ratelimits,
          kvNamespaces,
        },
      })),
    ],
    test: {
      name,
      include,
      exclude,
      setupFiles: ["./test/worker/setup.ts"],
      globalSetup: ["./test/support/global-setup.ts"],
      testTimeout: 30_000,
    },
  };
}

export default defineConfig({
  test: {
    // Logs are printed for failing tests only, so CI output stays readable.
    silent: "passed-only",
    projects: [
      workerProject("worker", ["test/worker/**/*.test.ts"], [SHORT_SESSIONS, TIGHT_LIMITS, KV_DOWN, BAD_RECORDING_KEY, SHEDDING]),
      workerProject("worker-short-sessions", [SHORT_SESSIONS], [], {
        OPENAI_SESSION_ROLLOVER_MINUTES: "0.05",
        WEB_SESSION_JOIN_TIMEOUT_SECONDS: "2",
      }),
      workerProject(
        "worker-tight-limits",
        [TIGHT_LIMITS],
        [],
        {},
        {
          WEBHOOK_FAILURE_LIMITER: { namespace_id: "1004", simple: { limit: 5, period: 60 } },
          CARRIER_ACCOUNT_LIMITER: { namespace_id: "1005", simple: { limit: 50, period: 60 } },
        },
      ),
      workerProject("worker-kv-down", [KV_DOWN], [], {}, {}, UNREACHABLE_KV),
      workerProject("worker-bad-recording-key", [BAD_RECORDING_KEY], [], { RECORDING_SIGNING_KEY: "too-short-for-a-key" }),
      workerProject("worker-shedding", [SHEDDING], [], { CALL_SHEDDING_LATENESS_MS: "500" }),
      {
        test: {
          // The web console in a real Chromium against the real platform under wrangler (one for the whole project).
          name: "browser",
          environment: "node",
          include: ["test/browser/**/*.test.ts"],
          globalSetup: ["./test/browser/support/global-setup.ts"],
          setupFiles: ["./test/browser/support/setup.ts"],
          // One Chromium at a time: the platform, the simulators and the browser already share this machine's cores.
          fileParallelism: false,
          // A page's answer waits on wrangler, workerd and Chromium sharing two cores: polls get seconds, not one.
          expect: { poll: { timeout: 15_000, interval: 100 } },
          // A sign-in past the platform's ten a minute from one address waits the minute out (support/console.ts).
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: "node",
          environment: "node",
          include: ["test/node/**/*.test.ts"],
          globalSetup: ["./test/support/global-setup.ts"],
          testTimeout: 60_000,
        },
      },
    ],
  },
});
