import { inject } from "vitest";
import WebSocket from "ws";
import { accessTokenFor, eventually } from "../../node/support/local-platform.ts";
import { world } from "./console.ts";

/**
 * An ended web session with something said in it, made the cheapest real way: the simulated OpenAI is told what the
 * caller says and what the agent answers (a scenario keyed by the session's correlation id), a caller joins `/live`
 * from here and speaks the fixture "hello" as PCM16 16 kHz, then the session is ended through the API and its
 * transcript and analysis are waited for in D1.
 */
export async function endedSessionWithTranscript(label: string): Promise<{ id: string; callerSaid: string; agentSaid: string }> {
  const { url, email, password } = world();
  const token = await accessTokenFor(url, email, password);
  const key = `${label}-${crypto.randomUUID()}`;
  const callerSaid = `Hello, this is ${label}, I would like to check my balance please.`;
  const agentSaid = `Thanks ${label}, I will send you the balance now.`;
  const control = `${inject("simulators").PROVIDER_SIM_CONTROL_URL}/__sim`;
  const scenario = await fetch(`${control}/scenarios/${encodeURIComponent(key)}`, {
    method: "PUT",
    body: JSON.stringify({ replies: [agentSaid], callerTranscripts: [callerSaid] }),
  });
  if (scenario.status !== 204) throw new Error(`scenario refused: ${scenario.status} ${await scenario.text()}`);

  const created = await call(token, "POST", "/api/v1/sessions", { provider: "openai" }, { "X-Correlation-ID": key });
  const { id } = created as { id: string };
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}/api/v1/sessions/${id}/live?role=caller`, [
    "switchboard.v1",
    `bearer.${token}`,
  ]);
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const speech = new Uint8Array(await (await fetch(`${control}/audio/hello?encoding=pcm16&rate=16000`)).arrayBuffer());
  // 20 ms frames, a few at a time (faster than real time), then half a second of silence to end the turn.
  const audio = new Uint8Array(speech.length + 16_000);
  audio.set(speech);
  for (let offset = 0, frames = 0; offset + 640 <= audio.length; offset += 640) {
    socket.send(audio.slice(offset, offset + 640));
    if (++frames % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await eventually(
    "the agent's reply in the transcript",
    async () => {
      const detail = (await call(token, "GET", `/api/v1/sessions/${id}`)) as { transcript: Array<{ role: string }> };
      return detail.transcript.some((line) => line.role === "agent") && detail.transcript.some((line) => line.role === "caller")
        ? true
        : undefined;
    },
    30_000,
    250,
  );
  socket.close();
  await call(token, "POST", `/api/v1/sessions/${id}/end`);
  await eventually(
    "the session's analysis",
    async () => ((await call(token, "GET", `/api/v1/sessions/${id}/analysis`)) as { status: string }).status === "ready" || undefined,
    30_000,
    250,
  );
  return { id, callerSaid, agentSaid };
}

async function call(token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<unknown> {
  const response = await fetch(`${world().url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}
