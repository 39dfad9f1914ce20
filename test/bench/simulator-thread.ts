/**
 * The provider simulator on a thread of its own, for the load benchmark: on one thread with the bench's Twilio
 * side it saturates a core at 50 calls, and its queueing would be measured as the platform's latency. The bench
 * drives it through its HTTP control API (test/simulators/providers/control-api.ts), as the Worker tests do.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import type { ConnectionSnapshot } from "../simulators/providers/index.ts";
import { type ProviderSimulatorOptions, providerSimulatorSettings, startProviderSimulator } from "../simulators/providers/index.ts";

export interface SimulatorThread {
  /** The Worker settings pointing at the simulator (providerSimulatorSettings). */
  settings: Record<string, string>;
  setScenario(key: string, scenario: unknown): Promise<void>;
  /** The key's connections, then forgets them and the key's scenario. */
  takeSessions(key: string): Promise<ConnectionSnapshot[]>;
  stop(): Promise<void>;
}

export async function startSimulatorThread(options: ProviderSimulatorOptions): Promise<SimulatorThread> {
  const worker = new Worker(new URL(import.meta.url), { workerData: options });
  const settings = await new Promise<Record<string, string>>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  const control = (path: string) => `${settings.PROVIDER_SIM_CONTROL_URL}/__sim/${path}`;
  const ok = async (response: Response) => {
    if (!response.ok) throw new Error(`simulator control: HTTP ${response.status} ${await response.text()}`);
    return response;
  };
  return {
    settings,
    async setScenario(key, scenario) {
      await ok(await fetch(control(`scenarios/${encodeURIComponent(key)}`), { method: "PUT", body: JSON.stringify(scenario) }));
    },
    async takeSessions(key) {
      const { connections } = (await (await ok(await fetch(control(`sessions/${encodeURIComponent(key)}`)))).json()) as {
        connections: ConnectionSnapshot[];
      };
      await ok(await fetch(control(`sessions/${encodeURIComponent(key)}`), { method: "DELETE" }));
      await ok(await fetch(control(`scenarios/${encodeURIComponent(key)}`), { method: "DELETE" }));
      return connections;
    },
    async stop() {
      worker.postMessage("stop");
      await new Promise((resolve) => worker.once("exit", resolve));
    },
  };
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const simulator = await startProviderSimulator(workerData as ProviderSimulatorOptions);
  port.on("message", () => void simulator.stop().then(() => port.close()));
  port.postMessage(providerSimulatorSettings(simulator));
}
