import { eventually } from "./carriers.ts";
import { api } from "./identity.ts";
import { openStream, type TwilioMediaCaller, twilioCallWith } from "./media-caller.ts";
import { simulatorConnections } from "./provider-simulator.ts";

/** Live calls for the provider switching and failover tests, and the Sessions API calls they make. */

export interface SwitchAnswer {
  success: boolean;
  sessionId: string;
  fromProvider: string;
  toProvider: string;
  contextPreserved: number;
  switchedAt: string | null;
  durationMs: number;
  error: string | null;
}

export interface SwitchHistoryItem {
  fromProvider: string;
  toProvider: string;
  reason: string;
  outcome: string;
  error: string | null;
}

/** An inbound Twilio call on `provider` with its media stream open; provider connections carry `key`. */
export async function startCall(provider: "openai" | "gemini" | "deepgram", key: string) {
  const call = await twilioCallWith(provider, key, "You are the switching test line.");
  return { ...call, caller: await streamOf(call) };
}

/** A caller's stream, closed after the test (agent audio "plays" 8× real time, so marks come back soon). */
export function streamOf(call: { streamUrl: string; callSid: string; mediaToken: string }): Promise<TwilioMediaCaller> {
  return openStream(call, 8);
}

/** One caller turn, and the agent's answer heard (more agent audio than before). */
export async function turn(caller: TwilioMediaCaller, utterance: "hello" | "invoice" | "payment" | "goodbye" = "hello") {
  const before = caller.agentAudioBytes();
  await caller.say(utterance);
  await caller.silence(700);
  await caller.until(() => caller.agentAudioBytes() >= before + 4_000);
}

/** The session's transcript in the API has every one of `texts`: within the 10 s D1 lags a live call (and a margin). */
export async function transcriptHas(token: string, sessionId: string, texts: string[]) {
  await eventually(async () => {
    const detail = (await (await api(`/api/v1/sessions/${sessionId}`, { token })).json()) as { transcript?: Array<{ text: string }> };
    return texts.every((text) => detail.transcript?.some((line) => line.text === text));
    // 700 polls 20 ms apart: 14 s of waiting at least, however quick each request.
  }, 700);
}

export function switchTo(token: string, sessionId: string, body: Record<string, unknown>) {
  return api(`/api/v1/sessions/${sessionId}/switch-provider`, { method: "POST", token, body });
}

export async function switchHistory(token: string, sessionId: string): Promise<SwitchHistoryItem[]> {
  return ((await (await api(`/api/v1/sessions/${sessionId}/switch-history`, { token })).json()) as { items: SwitchHistoryItem[] }).items;
}

/** The simulator's accepted connections of one provider for `key`, oldest first. */
export const connectionsOf = async (key: string, provider: string) =>
  (await simulatorConnections(key)).filter((connection) => connection.provider === provider && connection.refusedWithStatus === null);
