import { describe, expect, it } from "vitest";
import { eventually } from "../support/carriers.ts";
import { api } from "../support/identity.ts";
import { openStream, twilioCallWith } from "../support/media-caller.ts";
import { putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";

/**
 * Whole calls through the real Worker and the call's object: Twilio's voice webhook, the signed media upgrade, real
 * caller speech streamed as µ-law frames, and each voice AI provider (its simulator over a real socket, or the
 * offline engine) answering. What reached the provider is read from the simulator's recording; what reached the
 * caller from the media socket; what was kept from the public API.
 */

interface SessionDetail {
  status: string;
  transcript: Array<{ role: string; text: string; provider: string; interrupted: boolean }>;
  live: { provider: string; providerState: string; counters: Record<string, number> } | null;
}

async function transcriptOf(token: string, sessionId: string, ready: (detail: SessionDetail) => boolean): Promise<SessionDetail> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const response = await api(`/api/v1/sessions/${sessionId}`, { token });
    if (response.status === 200) {
      const detail = (await response.json()) as SessionDetail;
      if (ready(detail)) return detail;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("transcript never became ready");
}

describe.each(["openai", "gemini", "deepgram"] as const)("a phone call answered by %s", (provider) => {
  it("opens the provider at the webhook, converses, and keeps the transcript", async () => {
    const key = uniqueKey(`voice-${provider}`);
    await putScenario(key, { replies: ["Hello! How can I help you today?"], callerTranscripts: ["Hi, I need help with my invoice."] });
    const call = await twilioCallWith(provider, key, "You answer for the Acme test line.");
    // The provider session is opened and configured before the carrier's media arrives.
    await eventually(async () => (await simulatorConnections(key)).length === 1);

    const caller = await openStream(call);
    await caller.say("hello");
    await caller.silence(600);
    await caller.until(() => caller.agentAudioBytes() >= 8_000 * 1); // at least a second of agent speech
    expect(caller.count("mark")).toBeGreaterThan(0);

    const [connection] = await simulatorConnections(key);
    expect(JSON.stringify(connection!.setup)).toContain("You answer for the Acme test line.");
    expect(JSON.stringify(connection!.setup)).toContain("end_call");
    expect(connection!.audioIn.frames).toBeGreaterThan(50);

    const detail = await transcriptOf(call.token, call.sessionId, (d) => d.transcript.some((line) => line.role === "agent"));
    expect(detail.transcript.find((line) => line.role === "agent")).toMatchObject({
      text: "Hello! How can I help you today?",
      provider,
      interrupted: false,
    });
    // While the call lives, its object reports its provider link and counters.
    expect(detail.live).toMatchObject({ provider, providerState: "connected" });
    expect(detail.live!.counters.callerFrames).toBeGreaterThan(50);
    expect(detail.live!.counters.agentChunks).toBeGreaterThan(0);
    expect(detail.live!.counters.callerFramesDropped).toBe(0);
  });
});

describe("a phone call answered by the offline local engine", () => {
  it("answers each caller turn audibly", async () => {
    const key = uniqueKey("voice-local");
    const call = await twilioCallWith("local", key, "Greet the caller. Then listen.");
    const caller = await openStream(call);
    await caller.say("hello");
    await caller.silence(1000);
    await caller.until(() => caller.agentAudioBytes() >= 4_000);
    const detail = await transcriptOf(call.token, call.sessionId, (d) => d.transcript.some((line) => line.role === "agent"));
    expect(detail.transcript[0]).toMatchObject({ role: "caller", provider: "local" });
    expect(detail.transcript[1]?.text).toContain("Greet the caller");
  });
});
