import type { TestProject } from "vitest/node";

/**
 * Starts the simulated third parties once per test run and hands their addresses to the tests. Each simulator
 * module registers itself here as it is added.
 */
export default async function setup(project: TestProject) {
  const stops: Array<() => Promise<void>> = [];
  project.provide("simulators", {});
  return async () => {
    for (const stop of stops.reverse()) await stop();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    simulators: Record<string, string>;
  }
}
