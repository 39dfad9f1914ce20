import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { rms } from "../support/audio-signals.ts";
import { twilioStatus } from "../support/calls.ts";
import { eventually } from "../support/carriers.ts";
import { randomIp, userWithToken } from "../support/identity.ts";
import { openStream, twilioCallWith } from "../support/media-caller.ts";
import { onlyConnection, putScenario, uniqueKey } from "../support/provider-simulator.ts";
import { frequencyOf, recordedWav } from "../support/recordings.ts";

/**
 * A takeover in a recorded call: the supervisor's audio goes to the caller directly (durable-objects/live/
 * supervision.ts), not through the agent, and the recording's agent side holds it all the same — the right channel is
 * what the caller heard from the other end, whoever spoke it.
 */

/** A supervisor's browser on /live: its events as they come. */
async function supervisorOn(sessionId: string, token: string) {
  const response = await exports.default.fetch(`https://switchboard.test/api/v1/sessions/${sessionId}/live`, {
    headers: { Upgrade: "websocket", "CF-Connecting-IP": randomIp(), "Sec-WebSocket-Protocol": `switchboard.v1, bearer.${token}` },
  });
  expect(response.status).toBe(101);
  const socket = response.webSocket!;
  socket.accept();
  const events: string[] = [];
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") events.push((JSON.parse(event.data) as { type: string }).type);
  });
  return { socket, events };
}

describe("a recorded takeover", () => {
  it("the supervisor's 440 Hz tone, sent to the caller, is on the recording's right channel", async () => {
    const key = uniqueKey("recorded-takeover");
    await putScenario(key, { replies: ["Hello, how can I help?"] });
    const call = await twilioCallWith("openai", key, "You are the test line's assistant.", { recording: "on" });
    const caller = await openStream(call, 8);
    const supervisor = await supervisorOn(call.sessionId, (await userWithToken(call.tenantId, "supervisor")).accessToken);
    await eventually(async () => (await onlyConnection(key)).clientMessageCounts["session.update"]);
    await caller.silence(400);

    supervisor.socket.send(JSON.stringify({ type: "takeover" }));
    await eventually(async () => supervisor.events.includes("takeover"));
    const mediaFrom = caller.received.length;
    // 600 ms of a 440 Hz tone, PCM16 16 kHz in 20 ms frames, as a supervisor's microphone sends it.
    const tone = new Int16Array(16 * 600);
    for (let i = 0; i < tone.length; i++) tone[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000));
    for (let offset = 0; offset < tone.length; offset += 320) supervisor.socket.send(new Uint8Array(tone.buffer, offset * 2, 640).slice());
    await caller.until(() => caller.received.slice(mediaFrom).reduce((sum, m) => sum + (m.payloadBytes ?? 0), 0) >= 8 * 600 * 0.9);
    // The caller's line runs on past the tone (its frames are the recording's clock).
    await caller.silence(1500);
    expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 5 })).status).toBe(204);
    supervisor.socket.close(1000, "test done");

    const wav = await recordedWav(call.token, call.sessionId);
    const start = wav.right.findIndex((sample) => Math.abs(sample) > 2000);
    expect(start).toBeGreaterThanOrEqual(0);
    const heard = wav.right.subarray(start, start + 8 * 500);
    expect(heard.length).toBe(8 * 500);
    expect(rms(heard)).toBeGreaterThan(3000);
    expect(frequencyOf(heard, 8000)).toBeGreaterThan(420);
    expect(frequencyOf(heard, 8000)).toBeLessThan(460);
  });
});
