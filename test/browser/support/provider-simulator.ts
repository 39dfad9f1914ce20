import { inject } from "vitest";
import type { ConnectionSnapshot } from "../../simulators/providers/recorder.ts";
import type { ScenarioInput } from "../../simulators/providers/scenarios.ts";

/**
 * The simulated voice AI providers, seen from a browser test: scenarios and recordings through the simulator's control
 * API (test/simulators/providers/control-api.ts). A scenario applies to the provider connections made under one
 * correlation id, the `X-Correlation-ID` the session was created with.
 */
const control = (path: string, init?: RequestInit) => fetch(`${inject("simulators").PROVIDER_SIM_CONTROL_URL}/__sim/${path}`, init);

export async function putScenario(key: string, scenario: ScenarioInput): Promise<void> {
  const response = await control(`scenarios/${encodeURIComponent(key)}`, { method: "PUT", body: JSON.stringify(scenario) });
  if (response.status !== 204) throw new Error(`scenario refused (${response.status}): ${await response.text()}`);
}

/** Every provider connection the simulator recorded for a correlation id, oldest first. */
export async function simulatorConnections(key: string): Promise<ConnectionSnapshot[]> {
  const response = await control(`sessions/${encodeURIComponent(key)}`);
  const { connections } = (await response.json()) as { connections: ConnectionSnapshot[] };
  return connections;
}
