import type { TestProject } from "vitest/node";
import { startCarrierApis } from "../simulators/carriers/index.ts";
import { providerSimulatorSettings, startProviderSimulator } from "../simulators/providers/index.ts";

/**
 * Starts the simulated third parties once per test run and hands their addresses to the tests. Each simulator
 * module registers itself here as it is added.
 */
export default async function setup(project: TestProject) {
  const stops: Array<() => Promise<void>> = [];
  const providers = await startProviderSimulator();
  stops.push(providers.stop);
  const carriers = await startCarrierApis();
  stops.push(carriers.stop);
  project.provide("simulators", {
    ...providerSimulatorSettings(providers),
    TWILIO_API_BASE: carriers.twilioBaseUrl,
    TELNYX_API_BASE: carriers.telnyxBaseUrl,
    CARRIER_SIM_CONTROL_URL: carriers.controlUrl,
  });
  return async () => {
    for (const stop of stops.reverse()) await stop();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    simulators: Record<string, string>;
  }
}
