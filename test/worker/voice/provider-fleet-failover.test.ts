import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { eventually } from "../support/carriers.ts";
import { uniqueKey } from "../support/provider-simulator.ts";
import { startCall, switchHistory, turn } from "../support/switching.ts";

/**
 * Failover when the fleet registry marks the call's provider offline. In a file of its own: marking OpenAI offline
 * in this file's registry steers every later session away from it.
 */

describe("failover on the fleet's view", () => {
  it("fails over when the fleet registry marks the provider offline", async () => {
    const key = uniqueKey("failover-registry");
    const { caller, token, sessionId } = await startCall("openai", key);
    await turn(caller);
    // Other calls' objects report OpenAI failing: the registry marks it offline.
    const registry = env.PROVIDER_HEALTH.get(env.PROVIDER_HEALTH.idFromName("global"));
    await registry.report([1, 2, 3].map((n) => ({ provider: "openai" as const, kind: "connect_failure" as const, at: Date.now() + n })));
    expect((await registry.snapshot()).find((entry) => entry.provider === "openai")?.state).toBe("offline");
    await turn(caller, "invoice");
    const items = await eventually(async () => {
      const history = { items: await switchHistory(token, sessionId) };
      return history.items.find((item) => item.reason === "auto_failover" && item.outcome === "succeeded");
    });
    expect(items).toMatchObject({ fromProvider: "openai", toProvider: "gemini" });
    await turn(caller, "payment");
  });
});
