import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { testSettings } from "./test/support/test-settings.ts";

/**
 * Two projects: `worker` runs inside workerd with real D1, KV, rate limits and Durable Objects, against the real
 * Worker (wrangler.toml); `node` holds what must run in Node (operator CLI, simulators, source checks).
 * Simulated third parties (carriers, AI providers) are started by test/support/global-setup.ts on 127.0.0.1.
 */
export default defineConfig({
  test: {
    // Logs are printed for failing tests only, so CI output stays readable.
    silent: "passed-only",
    projects: [
      {
        plugins: [
          cloudflareTest(async ({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ...(await testSettings(inject)),
                TEST_MIGRATIONS: await readD1Migrations("./migrations"),
              },
            },
          })),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          setupFiles: ["./test/worker/setup.ts"],
          globalSetup: ["./test/support/global-setup.ts"],
          testTimeout: 30_000,
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
