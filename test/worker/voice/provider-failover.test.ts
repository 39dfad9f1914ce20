import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { eventually } from "../support/carriers.ts";
import { putScenario, uniqueKey } from "../support/provider-simulator.ts";
import { connectionsOf, startCall, switchHistory, transcriptHas, turn } from "../support/switching.ts";

/**
 * Automatic failover when the provider dies and refuses to come back. In a file of its own: the failed
 * connections reach this file's fleet registry, which then steers new sessions away from the provider.
 */

describe("automatic failover", () => {
  it("fails over when the provider dies and refuses to come back, with the conversation", async () => {
    const key = uniqueKey("failover-dead");
    await putScenario(key, { replies: ["Let me look that up."], callerTranscripts: ["Check my balance please."] });
    const { caller, token, sessionId } = await startCall("openai", key);
    await turn(caller);
    await transcriptHas(token, sessionId, ["Check my balance please."]);
    // From now on OpenAI refuses every connection; then the live one drops.
    await putScenario(`${key}#openai`, { refuseUpgrade: 503 });
    await putScenario(`${key}#gemini`, { replies: ["I am still here."] });
    const killed = await fetch(`${env.PROVIDER_SIM_CONTROL_URL}/__sim/sessions/${encodeURIComponent(key)}/drop`, { method: "POST" });
    expect(await killed.json()).toEqual({ dropped: 1 });
    await eventually(async () => {
      const history = { items: await switchHistory(token, sessionId) };
      return history.items.some((item) => item.reason === "auto_failover" && item.outcome === "succeeded");
    }, 200);
    const [gemini] = await connectionsOf(key, "gemini");
    expect(JSON.stringify([gemini!.setup, gemini!.history])).toContain("Check my balance please.");
    await turn(caller, "invoice");
  });
});
