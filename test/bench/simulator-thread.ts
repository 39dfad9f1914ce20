/**
 * The provider simulator on a thread of its own, for the load benchmark: on one thread with the bench's Twilio
 * side it saturates a core at 50 calls, and its queueing would be measured as the platform's latency. The bench
 * drives it through its HTTP control API (test/simulators/providers/control-api.ts), as the Worker tests do.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import type { ConnectionSnapshot } from "../simulators/providers/index.ts";
import { type ProviderSimulatorOptions, providerSimulatorSettings, startProviderSimulator } from "../simulators/providers/index.ts";

export interface SimulatorThread {
  /** The Worker settings pointing at the simulator (providerSimulatorSettings). */
  settings: Record<string, string>;
  setScenario(key: string, scenario: unknown): Promise<void>;
  /** The key's connections, then forgets them and the key's scenario. */
  takeSessions(key: string): Promise<ConnectionSnapshot[]>;
  /**
   * The p99 of the simulator thread's event-loop delay since the last call (ms): how late the simulator itself read
   * and stamped what it received, a delay the figures would otherwise charge to the target.
   */
  loopLagP99Ms(): Promise<number>;
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
    async loopLagP99Ms() {
      worker.postMessage("lag");
      return new Promise<number>((resolve) => worker.once("message", resolve));
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
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  port.on("message", (message: "lag" | "stop") => {
    if (message === "stop") return void simulator.stop().then(() => port.close());
    port.postMessage(lag.percentile(99) / 1e6);
    lag.reset();
  });
  port.postMessage(providerSimulatorSettings(simulator));
}
