import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { HealthReporter } from "../../../durable-objects/provider-health/reporter.ts";
import { eventually } from "../support/carriers.ts";
import { openStream, twilioCallWith } from "../support/media-caller.ts";
import { forgetProviderHealth } from "../support/provider-health.ts";
import { putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";

/**
 * What a call tells the fleet's health registry about its provider's answers, end to end: a Twilio call through the
 * real Worker and object to the OpenAI simulator, the object's outcomes sent to the registry and read from its table.
 */

beforeEach(forgetProviderHealth);

/** The `response` latencies the fleet's registry holds for a provider, once the isolate's queue is sent. */
async function responseSamples(provider: string): Promise<number[]> {
  // Reporters of one registry share the isolate's queue: this one sends what the call's object queued.
  await new HealthReporter(env, () => {}).flush();
  const registry = env.PROVIDER_HEALTH.get(env.PROVIDER_HEALTH.idFromName("global"));
  return runInDurableObject(registry, (_instance, state) =>
    state.storage.sql
      .exec<{ latency_ms: number }>("SELECT latency_ms FROM health_outcomes WHERE provider = ? AND kind = 'response'", provider)
      .toArray()
      .map((row) => row.latency_ms),
  );
}

describe("a provider's answer, as the fleet hears of it", () => {
  it("counts from when the provider heard the caller stop, not from when the call did", async () => {
    // The provider hears each turn's end two seconds after the audio shows it, as when the caller's audio queues on
    // its way out of a busy isolate; then it answers at once. The object sees the end itself after a second of
    // silence, so it owes a reply two seconds before the provider could know one was due.
    const key = uniqueKey("health-heard-late");
    await putScenario(key, { hearsTurnEndLateMs: 2_000, responseDelayMs: 0, replies: ["Hello! How can I help?"] });
    const call = await twilioCallWith("openai", key);
    await eventually(async () => (await simulatorConnections(key)).length === 1);
    const caller = await openStream(call);

    await caller.say("hello");
    await caller.silence(1_500);
    await caller.until(() => caller.agentAudioBytes() > 0);

    const samples = await eventually(async () => {
      const found = await responseSamples("openai");
      return found.length > 0 && found;
    });
    expect(samples).toHaveLength(1);
    // Counted from the object's own end of the turn it would be about two seconds, and a fleet p95 of that fails a
    // provider over; the provider's answer came with its speech_stopped, in the same burst of messages.
    expect(samples[0]).toBeLessThan(1_000);
    expect(samples[0]).toBeGreaterThanOrEqual(0);
  });
});
