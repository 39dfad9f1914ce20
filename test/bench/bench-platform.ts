import type { ApiClient, LocalPlatform } from "../node/support/local-platform.ts";
import { signIn, startLocalPlatform } from "../node/support/local-platform.ts";
import { type CarrierApis, startCarrierApis } from "../simulators/carriers/index.ts";
import { TEST_SECRET_NAMES, testSettings } from "../support/test-settings.ts";
import { quietWrangler } from "./options.ts";

/**
 * The load benches' platform settings (load.bench.ts, call-setup.bench.ts): the test suite's, pointed at the provider
 * simulator, with production's provider resilience instead of the suite's fast time scale (a 2 s reply timeout would
 * turn load into reconnects) and production's load shedding.
 */
export async function loadBenchSettings(inject: Parameters<typeof testSettings>[0]): Promise<Record<string, string>> {
  const settings = await testSettings(inject);
  for (const name of [
    "PROVIDER_RECONNECT_BASE_MS",
    "PROVIDER_BREAKER_OPEN_SECONDS",
    "PROVIDER_RESPONSE_TIMEOUT_MS",
    "PROVIDER_FLEET_CHECK_SECONDS",
    "CALL_SHEDDING_LATENESS_MS",
  ])
    delete settings[name];
  return settings;
}

/**
 * The carriers' REST APIs, simulated on 127.0.0.1 for the whole bench process (attaching a number asks the carrier
 * whether the account holds it): started on first use, stopped by `stopBenchCarriers` when the bench is done.
 */
let carrierApis: Promise<CarrierApis> | null = null;

export async function stopBenchCarriers(): Promise<void> {
  const running = carrierApis;
  carrierApis = null;
  if (running) await (await running).stop();
}

/**
 * A freshly started local platform (test/node/support/local-platform.ts: the real Worker under wrangler, a seeded
 * D1) with its admin signed in and one Twilio number per provider (`numbers`: provider → E.164).
 */
export async function startBenchPlatform(
  settings: Record<string, string>,
  numbers: Record<string, string>,
  options: { inspector?: boolean; tenantSettings?: Record<string, unknown> } = {},
): Promise<{ platform: LocalPlatform; api: ApiClient }> {
  quietWrangler(); // the seeding commands get wrangler's normal level regardless (local-platform.ts)
  carrierApis ??= startCarrierApis();
  const carriers = await carrierApis;
  settings = { ...settings, TWILIO_API_BASE: carriers.twilioBaseUrl, TELNYX_API_BASE: carriers.telnyxBaseUrl };
  let started: LocalPlatform | undefined;
  // A platform that fails to start (a busy machine) is retried, boundedly, on a fresh state directory.
  for (let attempt = 1; !started; attempt++) {
    try {
      started = await startLocalPlatform(settings, TEST_SECRET_NAMES, { inspector: options.inspector });
    } catch (error) {
      if (attempt >= 3) throw error;
      console.log(`  starting the platform failed (attempt ${attempt} of 3): ${String(error).split("\n")[0]?.slice(0, 200)}; retrying`);
    }
  }
  try {
    const api: ApiClient = await signIn(started.url, started.admin.email, started.admin.password);
    if (options.tenantSettings) {
      const patched = await api.request("PATCH", "/api/v1/tenant/settings", options.tenantSettings);
      if (patched.status !== 200) throw new Error(`tenant settings: HTTP ${patched.status} ${JSON.stringify(patched.body)}`);
    }
    for (const [provider, e164] of Object.entries(numbers)) {
      const created = await api.request("POST", "/api/v1/phone-numbers", { e164, carrier: "twilio", provider });
      if (created.status !== 201) throw new Error(`phone number for ${provider}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
    }
    return { platform: started, api };
  } catch (error) {
    await started.stop();
    throw error;
  }
}
