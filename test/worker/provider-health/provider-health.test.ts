import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { probeCorrelationId } from "../../../durable-objects/provider-health/registry.ts";
import { HealthReporter } from "../../../durable-objects/provider-health/reporter.ts";
import { chooseProvider } from "../../../workers/shared/provider-choice.ts";
import { type HealthReport, type ProviderHealth, REGISTRY_NAME } from "../../../workers/shared/provider-health.ts";
import { healthSnapshot } from "../../../workers/shared/provider-health-client.ts";
import type { ProviderName } from "../../../workers/shared/settings.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { putScenario, simulatorConnections } from "../support/provider-simulator.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function freshRegistry() {
  const name = `registry-${crypto.randomUUID()}`;
  return { name, stub: env.PROVIDER_HEALTH.get(env.PROVIDER_HEALTH.idFromName(name)) };
}

type Registry = ReturnType<typeof freshRegistry>["stub"];

async function healthOf(stub: Registry, provider: ProviderName): Promise<ProviderHealth> {
  const snapshot = await stub.snapshot();
  const found = snapshot.find((entry) => entry.provider === provider);
  if (!found) throw new Error(`no ${provider} in the snapshot`);
  return found;
}

const outcomes = (provider: ProviderName, kind: HealthReport["kind"], count: number, latencyMs?: number): HealthReport[] =>
  Array.from({ length: count }, () => ({ provider, kind, latencyMs, at: Date.now() }));

/** An env whose registry RPCs go through `report`, which may pass a batch on to the real registry (`send`) or not. */
function envReporting(report: (batch: HealthReport[], send: (batch: HealthReport[]) => Promise<unknown>) => Promise<unknown>): Env {
  const namespace = env.PROVIDER_HEALTH;
  return {
    PROVIDER_HEALTH: {
      idFromName: (name: string) => namespace.idFromName(name),
      get: (id: DurableObjectId) => ({ report: (batch: HealthReport[]) => report(batch, (sent) => namespace.get(id).report(sent)) }),
    },
  } as unknown as Env;
}

/** Makes every offline provider's probe due now, then runs the alarm. */
async function probeNow(stub: Registry): Promise<boolean> {
  await runInDurableObject(stub, (_instance, state) => {
    state.storage.sql.exec("UPDATE health_providers SET next_probe_at = ? WHERE next_probe_at IS NOT NULL", Date.now() - 1);
  });
  return runDurableObjectAlarm(stub);
}

describe("provider health registry", () => {
  it("starts with every provider unknown", async () => {
    const { stub } = freshRegistry();
    const snapshot = await stub.snapshot();
    expect(snapshot.map((h) => h.provider).sort()).toEqual(["deepgram", "gemini", "local", "openai"]);
    for (const health of snapshot) {
      expect(health).toMatchObject({
        state: "unknown",
        samples: 0,
        successRate: null,
        p95LatencyMs: null,
        consecutiveFailures: 0,
        nextProbeAt: null,
        probeDue: false,
      });
    }
  });

  it("3 consecutive connect failures take a provider offline and schedule a probe; a success brings it back", async () => {
    const { stub } = freshRegistry();
    await stub.report(outcomes("openai", "connect_failure", 2));
    expect((await healthOf(stub, "openai")).state).not.toBe("offline");
    const before = Date.now();
    await stub.report(outcomes("openai", "connect_failure", 1));
    const offline = await healthOf(stub, "openai");
    expect(offline).toMatchObject({ state: "offline", consecutiveFailures: 3, samples: 3, successRate: 0, probeDue: false });
    expect(offline.nextProbeAt).toBeGreaterThanOrEqual(before + 30_000);
    expect(offline.nextProbeAt).toBeLessThanOrEqual(Date.now() + 30_000);
    expect(offline.lastFailureAt).not.toBeNull();
    const alarm = await runInDurableObject(stub, (_instance, state) => state.storage.getAlarm());
    expect(alarm).toBe(offline.nextProbeAt);

    // Errors mid-session do not count as connect failures; a connect failure older than the last success does not either.
    await stub.report([{ provider: "openai", kind: "connect_success", at: Date.now() }]);
    const back = await healthOf(stub, "openai");
    expect(back).toMatchObject({ state: "healthy", consecutiveFailures: 0, nextProbeAt: null, probeDue: false });
    expect(back.lastSuccessAt).not.toBeNull();
    await stub.report([{ provider: "openai", kind: "connect_failure", at: Date.now() - 60_000 }, ...outcomes("openai", "error", 5)]);
    expect((await healthOf(stub, "openai")).consecutiveFailures).toBe(0);
    expect(await runInDurableObject(stub, (_instance, state) => state.storage.getAlarm())).toBeNull();
  });

  it("a success rate below 95% (over at least 10 samples) is unhealthy", async () => {
    const { stub } = freshRegistry();
    await stub.report([...outcomes("gemini", "response", 19, 200), ...outcomes("gemini", "error", 1)]);
    expect(await healthOf(stub, "gemini")).toMatchObject({ state: "healthy", successRate: 0.95, errorRate: 0.05, samples: 20 });
    await stub.report(outcomes("gemini", "connect_failure", 1));
    const health = await healthOf(stub, "gemini");
    expect(health.state).toBe("unhealthy");
    expect(health.successRate).toBeCloseTo(19 / 21);
    // Too few samples decide nothing.
    const { stub: small } = freshRegistry();
    await small.report([...outcomes("gemini", "response", 3, 100), ...outcomes("gemini", "error", 2)]);
    expect((await healthOf(small, "gemini")).state).toBe("healthy");
  });

  it("p95 latency over 1000 ms is degraded, over 3000 ms unhealthy", async () => {
    const { stub } = freshRegistry();
    await stub.report(outcomes("deepgram", "response", 20, 300));
    expect(await healthOf(stub, "deepgram")).toMatchObject({ state: "healthy", p95LatencyMs: 300 });
    // 2 slow of 22: the 95th percentile (nearest rank: 21st of 22) is slow.
    await stub.report(outcomes("deepgram", "response", 2, 1500));
    expect(await healthOf(stub, "deepgram")).toMatchObject({ state: "degraded", p95LatencyMs: 1500 });
    await stub.report(outcomes("deepgram", "response", 2, 3500));
    expect(await healthOf(stub, "deepgram")).toMatchObject({ state: "unhealthy", p95LatencyMs: 3500 });
  });

  it("keeps a bounded window: the newest 200 outcomes of the last 5 minutes", async () => {
    const { stub } = freshRegistry();
    await stub.report([{ provider: "local", kind: "error", at: Date.now() - 6 * 60_000 }]);
    expect((await healthOf(stub, "local")).samples).toBe(0);
    await stub.report(outcomes("local", "response", 250, 100));
    expect((await healthOf(stub, "local")).samples).toBe(200);
    const stored = await runInDurableObject(
      stub,
      (_instance, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM health_outcomes").one().n,
    );
    expect(stored).toBe(200);
    // Malformed reports are skipped.
    const result = await stub.report([
      { provider: "nope", kind: "response", at: Date.now() } as unknown as HealthReport,
      { provider: "local", kind: "weird", at: 1 } as unknown as HealthReport,
    ]);
    expect(result.accepted).toBe(0);
  });

  it("probes an offline provider from its alarm: a successful probe brings it back", async () => {
    const { stub } = freshRegistry();
    await stub.report(outcomes("openai", "connect_failure", 3));
    expect((await healthOf(stub, "openai")).state).toBe("offline");
    // Not due yet: the alarm changes nothing.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await healthOf(stub, "openai")).toMatchObject({ state: "offline", probeDue: false });
    expect(await probeNow(stub)).toBe(true);
    const health = await healthOf(stub, "openai");
    expect(health).toMatchObject({ state: "healthy", consecutiveFailures: 0, nextProbeAt: null, probeDue: false });
    expect(await simulatorConnections(probeCorrelationId(stub.id.toString(), "openai"))).toHaveLength(1);
    expect(await runInDurableObject(stub, (_instance, state) => state.storage.getAlarm())).toBeNull();
  });

  it("a failed probe keeps the provider offline and schedules the next probe 30 s later", async () => {
    const { stub } = freshRegistry();
    await putScenario(probeCorrelationId(stub.id.toString(), "gemini"), { refuseUpgrade: 503 });
    await stub.report(outcomes("gemini", "connect_failure", 3));
    expect(await probeNow(stub)).toBe(true);
    const health = await healthOf(stub, "gemini");
    expect(health).toMatchObject({ state: "offline", consecutiveFailures: 4, probeDue: false });
    expect(health.nextProbeAt).toBeGreaterThan(Date.now() + 25_000);
    expect(await runInDurableObject(stub, (_instance, state) => state.storage.getAlarm())).toBe(health.nextProbeAt);
  });
});

describe("HealthReporter", () => {
  it("batches in memory and sends on flush", async () => {
    const { name, stub } = freshRegistry();
    const tasks: Promise<unknown>[] = [];
    const reporter = new HealthReporter(env, (task) => tasks.push(task), { registryName: name });
    for (const report of outcomes("openai", "response", 5, 400)) reporter.record(report);
    expect(reporter.pending).toBe(5);
    expect((await healthOf(stub, "openai")).samples).toBe(0);
    await reporter.flush();
    expect(reporter.pending).toBe(0);
    expect(await healthOf(stub, "openai")).toMatchObject({ samples: 5, p95LatencyMs: 400 });
    expect(tasks).toHaveLength(0);
  });

  it("flushes by itself at 20 outcomes, and 2 s (here 50 ms) after the first unflushed one", async () => {
    const { name, stub } = freshRegistry();
    const tasks: Promise<unknown>[] = [];
    const reporter = new HealthReporter(env, (task) => tasks.push(task), { registryName: name, delayMs: 50 });
    for (const report of outcomes("gemini", "response", 25, 100)) reporter.record(report);
    // One flush at the 20th; the 5 recorded before it started ride along with it.
    await Promise.all(tasks);
    expect(reporter.pending).toBe(0);
    expect((await healthOf(stub, "gemini")).samples).toBe(25);

    reporter.record({ provider: "gemini", kind: "error", at: Date.now() });
    let samples = 25;
    for (let i = 0; i < 50 && samples < 26; i++) {
      await sleep(20);
      await Promise.all(tasks);
      samples = (await healthOf(stub, "gemini")).samples;
    }
    expect(samples).toBe(26);
    expect(reporter.pending).toBe(0);
  });

  it("sends successes after the longer delay, and bad news after the short one even when a success is waiting", async () => {
    const { name, stub } = freshRegistry();
    const tasks: Promise<unknown>[] = [];
    const reporter = new HealthReporter(env, (task) => tasks.push(task), { registryName: name, delayMs: 50, successDelayMs: 60_000 });
    reporter.record({ provider: "openai", kind: "response", latencyMs: 300, at: Date.now() });
    await sleep(150);
    await Promise.all(tasks);
    // A latency sample alone waits for the success delay.
    expect(reporter.pending).toBe(1);
    expect((await healthOf(stub, "openai")).samples).toBe(0);

    reporter.record({ provider: "openai", kind: "connect_failure", at: Date.now() });
    let samples = 0;
    for (let i = 0; i < 50 && samples < 2; i++) {
      await sleep(20);
      await Promise.all(tasks);
      samples = (await healthOf(stub, "openai")).samples;
    }
    // The failure pulled the timer in, and the waiting success rode along.
    expect(samples).toBe(2);
    expect(reporter.pending).toBe(0);
  });

  it("withholds what it sees while its isolate is behind, and reports again once it has caught up", async () => {
    const { name, stub } = freshRegistry();
    let behindMs = 640;
    const reporter = new HealthReporter(env, () => {}, { registryName: name, behindMs: () => behindMs });
    reporter.record({ provider: "deepgram", kind: "response", latencyMs: 4_000, at: Date.now() });
    reporter.record({ provider: "deepgram", kind: "connect_failure", at: Date.now() });
    expect(reporter.pending).toBe(0);
    behindMs = 0;
    reporter.record({ provider: "deepgram", kind: "response", latencyMs: 400, at: Date.now() });
    await reporter.flush();
    // Only the sample taken while the isolate kept up reached the registry: the slow answer and the failure were its own.
    expect(await healthOf(stub, "deepgram")).toMatchObject({ samples: 1, p95LatencyMs: 400, state: "healthy" });
  });

  it("keeps the batch when the registry cannot be reached, bounded to 500, and never throws", async () => {
    const { name, stub } = freshRegistry();
    let broken = true;
    const flaky = envReporting((batch, send) => (broken ? Promise.reject(new Error("registry unavailable")) : send(batch)));
    const reporter = new HealthReporter(flaky, () => {}, { registryName: name, batchSize: 1_000 });
    for (const report of outcomes("deepgram", "connect_failure", 510)) reporter.record(report);
    expect(reporter.pending).toBe(500);
    await expect(reporter.flush()).resolves.toBeUndefined();
    expect(reporter.pending).toBe(500);
    broken = false;
    await reporter.flush();
    expect(reporter.pending).toBe(0);
    expect(await healthOf(stub, "deepgram")).toMatchObject({ state: "offline", consecutiveFailures: 500, samples: 200 });
  });
});

describe("HealthReporter, one queue per isolate", () => {
  /** The env with the registry's `report` counted: how many RPCs, and how many outcomes each carried. */
  function countingEnv() {
    const batches: number[] = [];
    const counted = envReporting((batch, send) => {
      batches.push(batch.length);
      return send(batch);
    });
    return { batches, counted };
  }

  it("sends the outcomes of many calls' objects in one batch, not one send per call", async () => {
    const { name, stub } = freshRegistry();
    const { batches, counted } = countingEnv();
    const tasks: Promise<unknown>[] = [];
    // Four calls' objects, as in one isolate, each with its own reporter.
    const reporters = Array.from({ length: 4 }, () => new HealthReporter(counted, (task) => tasks.push(task), { registryName: name }));
    for (const reporter of reporters) for (const report of outcomes("openai", "response", 5, 300)) reporter.record(report);
    await Promise.all(tasks);
    expect(batches).toEqual([20]);
    expect(reporters.map((reporter) => reporter.pending)).toEqual([0, 0, 0, 0]);
    expect((await healthOf(stub, "openai")).samples).toBe(20);
  });

  it("sends at once what a timer lost with its object was to send, when the next outcome comes", async () => {
    const { name, stub } = freshRegistry();
    const tasks: Promise<unknown>[] = [];
    const options = { registryName: name, delayMs: 50, successDelayMs: 50 };
    // The first object's timer never fires, as when that object is evicted before it is due.
    vi.useFakeTimers({ toFake: ["setTimeout"] });
    try {
      new HealthReporter(env, (task) => tasks.push(task), options).record({ provider: "gemini", kind: "error", at: Date.now() });
    } finally {
      vi.useRealTimers();
    }
    await sleep(1_100);
    expect((await healthOf(stub, "gemini")).samples).toBe(0);
    // Another object's outcome finds the queue overdue: both go now, not after a delay of their own.
    const second = new HealthReporter(env, (task) => tasks.push(task), { ...options, delayMs: 60_000, successDelayMs: 60_000 });
    second.record({ provider: "gemini", kind: "connect_success", at: Date.now() });
    await Promise.all(tasks);
    expect(second.pending).toBe(0);
    expect((await healthOf(stub, "gemini")).samples).toBe(2);
  });
});

describe("chooseProvider", () => {
  const order: ProviderName[] = ["openai", "gemini", "deepgram", "local"];
  const all = () => true;
  const snap = (states: Partial<Record<ProviderName, ProviderHealth["state"]>>, probeDue: ProviderName[] = []) =>
    Object.entries(states).map(([provider, state]) => ({
      provider: provider as ProviderName,
      state: state!,
      probeDue: probeDue.includes(provider as ProviderName),
    }));

  it("keeps the preference when it is healthy, degraded or unknown", () => {
    expect(chooseProvider(snap({ gemini: "healthy", openai: "healthy" }), "gemini", order, all)).toBe("gemini");
    expect(chooseProvider(snap({ gemini: "degraded", openai: "healthy" }), "gemini", order, all)).toBe("gemini");
    expect(chooseProvider(snap({ openai: "healthy" }), "deepgram", order, all)).toBe("deepgram");
    expect(chooseProvider(snap({ openai: "offline" }), "local", order, all)).toBe("local");
  });

  it("passes over an offline, unhealthy or unconfigured preference", () => {
    expect(chooseProvider(snap({ gemini: "offline", openai: "healthy" }), "gemini", order, all)).toBe("openai");
    expect(chooseProvider(snap({ gemini: "unhealthy", openai: "healthy" }), "gemini", order, all)).toBe("openai");
    expect(chooseProvider(snap({ gemini: "healthy", openai: "healthy" }), "gemini", order, (p) => p !== "gemini")).toBe("openai");
  });

  it("takes the first healthy in order, then degraded, then unknown; local last", () => {
    expect(chooseProvider(snap({ openai: "degraded", gemini: "healthy", deepgram: "healthy" }), null, order, all)).toBe("gemini");
    expect(chooseProvider(snap({ openai: "unhealthy", gemini: "degraded", deepgram: "degraded" }), null, order, all)).toBe("gemini");
    expect(chooseProvider(snap({ openai: "offline", gemini: "unhealthy", deepgram: "unknown" }), null, order, all)).toBe("deepgram");
    expect(chooseProvider(snap({ openai: "offline", gemini: "unhealthy", deepgram: "offline", local: "healthy" }), null, order, all)).toBe(
      "local",
    );
    // local is the last resort even when it is healthy and earlier in the order.
    expect(chooseProvider(snap({ local: "healthy", openai: "degraded" }), null, ["local", "openai"], all)).toBe("openai");
    // Order is respected; unconfigured ones are skipped; missing from the snapshot = unknown.
    expect(chooseProvider(snap({ openai: "healthy", deepgram: "healthy" }), null, ["deepgram", "openai"], all)).toBe("deepgram");
    expect(chooseProvider(snap({}), null, order, (p) => p === "gemini")).toBe("gemini");
    expect(chooseProvider(snap({}), null, order, (p) => p === "local")).toBe("local");
  });

  it("tries an offline provider whose probe is due before falling back to local", () => {
    expect(chooseProvider(snap({ openai: "offline", gemini: "offline", deepgram: "unhealthy" }, ["gemini"]), null, order, all)).toBe(
      "gemini",
    );
    expect(chooseProvider(snap({ openai: "offline", gemini: "unknown" }, ["openai"]), null, order, all)).toBe("gemini");
    expect(chooseProvider(snap({ openai: "offline", gemini: "unhealthy", deepgram: "offline" }, ["openai"]), "gemini", order, all)).toBe(
      "openai",
    );
    expect(chooseProvider(snap({ openai: "offline", gemini: "unhealthy", deepgram: "offline" }), null, order, all)).toBe("local");
  });
});

describe("GET /api/v1/providers/health", () => {
  it("shows every provider in PROVIDER_ORDER with its figures, configured flag and the thresholds", async () => {
    const global = env.PROVIDER_HEALTH.get(env.PROVIDER_HEALTH.idFromName("global"));
    await global.report([...outcomes("deepgram", "connect_failure", 3), ...outcomes("gemini", "response", 10, 1200)]);
    const tenantId = await createTenant();
    const viewer = await userWithToken(tenantId, "viewer");
    const response = await api("/api/v1/providers/health", { token: viewer.accessToken });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      providers: Array<Record<string, unknown>>;
      thresholds: Record<string, number>;
    };
    expect(body.providers.map((p) => p.provider)).toEqual(["openai", "gemini", "deepgram", "local"]);
    expect(body.providers.find((p) => p.provider === "openai")).toMatchObject({
      state: "unknown",
      configured: true,
      samples: 0,
      lastSuccessAt: null,
    });
    expect(body.providers.find((p) => p.provider === "gemini")).toMatchObject({
      state: "degraded",
      p95LatencyMs: 1200,
      samples: 10,
      successRate: 1,
    });
    const deepgram = body.providers.find((p) => p.provider === "deepgram")!;
    expect(deepgram).toMatchObject({ state: "offline", consecutiveFailures: 3, probeDue: false });
    expect(Date.parse(deepgram.nextProbeAt as string)).toBeGreaterThan(Date.now());
    expect(body.thresholds).toMatchObject({
      latencyWarningMs: 1000,
      latencyErrorMs: 3000,
      minSuccessRate: 0.95,
      offlineAfter: 3,
      probeSeconds: 30,
      minSamples: 10,
    });
  });

  it("needs a credential", async () => {
    expect((await api("/api/v1/providers/health")).status).toBe(401);
  });
});

describe("the fleet's snapshot as a live call sees it", () => {
  it("is reused while younger than the asker's interval, and fetched anew when the asker wants it fresh", async () => {
    const registry = env.PROVIDER_HEALTH.get(env.PROVIDER_HEALTH.idFromName(REGISTRY_NAME));
    const samplesOf = (snapshot: ProviderHealth[]) => snapshot.find((entry) => entry.provider === "deepgram")?.samples;
    const before = samplesOf(await healthSnapshot(env, 0))!;

    await registry.report(outcomes("deepgram", "connect_success", 3));
    // Every live call asking every 10 s would be one registry query per call: within the interval, the isolate's copy.
    expect(samplesOf(await healthSnapshot(env, 10_000))).toBe(before);
    expect(samplesOf(await healthSnapshot(env, 0))).toBe(Math.min(before + 3, 200));
    expect(samplesOf(await healthSnapshot(env, 10_000))).toBe(Math.min(before + 3, 200));
  });
});
