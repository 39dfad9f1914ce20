import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { signIn, startLocalPlatform } from "../../node/support/local-platform.ts";
import startSimulators from "../../support/global-setup.ts";
import { TEST_SECRET_NAMES, testSettings } from "../../support/test-settings.ts";
import { findChromium } from "./chromium.ts";

/**
 * The browser tests' world, once per run: the simulated third parties (test/support/global-setup.ts), then the real
 * platform under wrangler (the Worker, its objects, a seeded D1, the built console as its static assets) told where
 * the simulators are. Without a Chromium on the machine the platform is not started and the tests say why in one line.
 */
export default async function setup(project: TestProject) {
  const chromium = findChromium();
  project.provide("chromium", chromium);
  if (!chromium) {
    console.warn("browser tests skipped: no Chromium found (install Debian's `chromium`, as .ci/run does, or set CHROMIUM_PATH)");
    return;
  }
  const stopSimulators = await startSimulators(project);
  const provided = project.getProvidedContext();
  const settings = {
    ...(await testSettings((key) => provided[key])),
    // The simulated Telnyx posts from loopback, not from Telnyx's published ranges.
    TELNYX_IP_ALLOWLIST: "127.0.0.1/32,::1/128",
  };
  const platform = await startLocalPlatform(settings, TEST_SECRET_NAMES);
  // wrangler echoes every request the console makes; the tests' own failures are what the output is for.
  process.env.WRANGLER_LOG ??= "error";
  // One phone number per carrier, so calls the tests drive through the carrier simulators reach a session.
  const admin = await signIn(platform.url, platform.admin.email, platform.admin.password);
  for (const [e164, carrier] of Object.entries(CONSOLE_NUMBERS)) {
    const created = await admin.request("POST", "/api/v1/phone-numbers", { e164, carrier });
    if (created.status !== 201) throw new Error(`phone number ${e164}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
  }
  // An admin of its own for each test file, as separate people are: the platform's API budget is per user (300
  // requests a minute), and the files' pages, polling as they wait, spent one shared budget whenever CI ran slowly.
  const users: Record<string, { email: string; password: string }> = {};
  for (const file of readdirSync(join(import.meta.dirname, "..")).filter((name) => name.endsWith(".test.ts"))) {
    const user = { email: `console-${file.replace(/\.test\.ts$/, "")}@e2e.switchboard.test`, password: "e2e-console-password-0123" };
    const created = await admin.request("POST", "/api/v1/users", { ...user, role: "admin" });
    if (created.status !== 201) throw new Error(`user for ${file}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
    users[file] = user;
  }
  project.provide("console", { url: platform.url, tenantId: platform.admin.tenantId, users });
  return async () => {
    await platform.stop();
    await stopSimulators();
  };
}

/** The seeded tenant's numbers, by carrier, for calls the browser tests drive. */
export const CONSOLE_NUMBERS = { "+15550109001": "twilio", "+15550109002": "telnyx" } as const;

declare module "vitest" {
  export interface ProvidedContext {
    chromium: string | null;
    /** The platform, its tenant, and each test file's own admin (by file name). */
    console: { url: string; tenantId: string; users: Record<string, { email: string; password: string }> };
  }
}
