import { exports } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { twilioStatus } from "../support/calls.ts";
import { eventually } from "../support/carriers.ts";
import { api, createTenant, randomIp, userWithToken } from "../support/identity.ts";
import { closeLiveBrowsers, joinLive } from "../support/live-browser.ts";
import { openStream, type TwilioMediaCaller, twilioCallWith } from "../support/media-caller.ts";
import { callerSpeech, putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";
import { switchTo } from "../support/switching.ts";

/**
 * Latency at the caller's ear, per agent turn, end to end: a Twilio call (its media caller echoes each mark as the
 * audio before it plays) or a browser (no marks) talks with the OpenAI simulator through the real Worker and the
 * call's object; GET /api/v1/sessions/{id} answers each turn's instants and stages. Only the order and presence of
 * the instants are asserted, never durations.
 */

interface Turn {
  seq: number;
  provider: string;
  callerStoppedAt: string | null;
  providerFirstAudioAt: string;
  firstFrameSentAt: string | null;
  firstMarkHeardAt: string | null;
  stages: { providerMs: number | null; platformMs: number | null; carrierMs: number | null; earMs: number | null };
  interrupted: boolean;
}

const ms = (iso: string | null) => (iso === null ? null : Date.parse(iso));

/** The session's turns once `count` of them reached D1. */
async function turnsOf(token: string, sessionId: string, count: number): Promise<Turn[]> {
  return eventually(async () => {
    const response = await api(`/api/v1/sessions/${sessionId}`, { token });
    const turns = response.status === 200 ? ((await response.json()) as { turns: Turn[] }).turns : [];
    return turns.length >= count && turns;
  }, 300);
}

/** A turn the caller heard in full: every point happened, in order, and the stages add up to the ear's latency. */
function expectHeardInOrder(turn: Turn): void {
  const [stopped, firstAudio, firstFrame, heard] = [
    turn.callerStoppedAt,
    turn.providerFirstAudioAt,
    turn.firstFrameSentAt,
    turn.firstMarkHeardAt,
  ].map(ms);
  expect(stopped).not.toBeNull();
  expect(firstFrame).not.toBeNull();
  expect(heard).not.toBeNull();
  expect(stopped!).toBeLessThanOrEqual(firstAudio!);
  expect(firstAudio!).toBeLessThanOrEqual(firstFrame!);
  expect(firstFrame!).toBeLessThanOrEqual(heard!);
  const { providerMs, platformMs, carrierMs, earMs } = turn.stages;
  expect([providerMs, platformMs, carrierMs].every((stage) => stage !== null && stage >= 0)).toBe(true);
  expect(providerMs! + platformMs! + carrierMs!).toBe(earMs);
  expect(turn.interrupted).toBe(false);
}

/** Waits until the agent's reply (audio beyond `before` bytes) has stopped arriving and every mark of it came back. */
async function replyPlayed(caller: TwilioMediaCaller, before: number): Promise<void> {
  await caller.until(() => caller.agentAudioBytes() > before);
  // Marks come back on the media caller's playback clock, not with a message: polled.
  for (let bytes = -1; bytes !== caller.agentAudioBytes(); ) {
    bytes = caller.agentAudioBytes();
    await eventually(async () => caller.echoedMarks.length === caller.count("mark"), 500);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** Microphone audio: 20 ms frames of PCM16 16 kHz (640 bytes), a few frames per tick (faster than real time). */
async function speak(browser: WebSocket, pcm: Uint8Array): Promise<void> {
  for (let offset = 0, frames = 0; offset + 640 <= pcm.length; offset += 640) {
    browser.send(pcm.slice(offset, offset + 640));
    if (++frames % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function endCall(call: { callSid: string; number: string }): Promise<void> {
  expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 2 })).status).toBe(204);
}

afterEach(closeLiveBrowsers);

describe("latency at the caller's ear, per turn", () => {
  it("records each turn of a Twilio call: speech end, provider's first audio, first frame, first mark heard", async () => {
    const key = uniqueKey("ear-twilio");
    await putScenario(key, {
      replies: ["Hello! How can I help you today?", "Your invoice was paid on Monday.", "You pressed one."],
      callerTranscripts: ["Hi there.", "Was my invoice paid?"],
    });
    const call = await twilioCallWith("openai", key);
    await eventually(async () => (await simulatorConnections(key)).length === 1);
    const caller = await openStream(call);

    await caller.say("hello");
    await caller.silence(600);
    await replyPlayed(caller, 0);
    await caller.say("invoice");
    await caller.silence(600);
    await replyPlayed(caller, caller.agentAudioBytes());
    // A reply to a key press: no caller speech since the last reply began, so no speech end to measure from.
    caller.dtmf("1");
    await replyPlayed(caller, caller.agentAudioBytes());
    // The last reply's turn is over when the call is.
    await endCall(call);

    const turns = await turnsOf(call.token, call.sessionId, 3);
    expect(turns.map((turn) => [turn.seq, turn.provider])).toEqual([
      [1, "openai"],
      [2, "openai"],
      [3, "openai"],
    ]);
    expectHeardInOrder(turns[0]!);
    expectHeardInOrder(turns[1]!);
    // The second reply answers the second utterance, which ended after the first reply began.
    expect(ms(turns[1]!.callerStoppedAt)!).toBeGreaterThan(ms(turns[0]!.providerFirstAudioAt)!);

    const keyPress = turns[2]!;
    expect(keyPress.callerStoppedAt).toBeNull();
    expect(keyPress.stages.providerMs).toBeNull();
    expect(keyPress.stages.earMs).toBeNull();
    expect(keyPress.firstMarkHeardAt).not.toBeNull();
    expect(keyPress.stages.carrierMs).not.toBeNull();
  });

  it("records a reply the caller cut off before its first mark came back as interrupted and never heard", async () => {
    const key = uniqueKey("ear-barge");
    await putScenario(key, {
      replies: ["Thanks for calling about your invoice. I can see three open items on your account.", "Of course."],
      callerTranscripts: ["Hi, about my invoice.", "Wait."],
    });
    const call = await twilioCallWith("openai", key);
    await eventually(async () => (await simulatorConnections(key)).length === 1);
    // Playback fifty times slower than real time: the reply's first mark is seconds away when the caller talks.
    const caller = await openStream(call, 0.02);
    await caller.say("hello");
    await caller.silence(600);
    await caller.until(() => caller.agentAudioBytes() > 0);
    expect(caller.echoedMarks).toEqual([]);
    await caller.say("interrupt");
    await caller.until(() => caller.count("clear") > 0);
    await caller.silence(600);
    await caller.until(() => caller.markedItems().length >= 2);
    await endCall(call);

    const [cutOff, next] = await turnsOf(call.token, call.sessionId, 2);
    expect(cutOff).toMatchObject({ interrupted: true, firstMarkHeardAt: null, stages: { carrierMs: null, earMs: null } });
    expect(cutOff!.callerStoppedAt).not.toBeNull();
    expect(cutOff!.firstFrameSentAt).not.toBeNull();
    // The reply to the interruption answers the caller's second utterance, spoken over the first reply.
    expect(ms(next!.callerStoppedAt)!).toBeGreaterThan(ms(cutOff!.providerFirstAudioAt)!);
    expect(next!.interrupted).toBe(false);
  });

  it("a switch's cut-over ends the turn playing as interrupted; the next turn is the new provider's", async () => {
    const key = uniqueKey("ear-switch");
    await putScenario(key, {
      replies: ["Thanks for calling about your invoice. I can see three open items on your account, the oldest from March."],
    });
    const call = await twilioCallWith("openai", key);
    await eventually(async () => (await simulatorConnections(key)).length === 1);
    // A supervisor watches, so the switch waits for the reply's words to be the call's: Gemini is then handed a
    // conversation ending with the agent's line, and waits for the caller. Switched before that line came (the reply
    // still being generated, as under load), Gemini would answer "hello" again and "invoice" would cut that off.
    await eventually(async () => (await api(`/api/v1/sessions/${call.sessionId}`, { token: call.token })).status === 200);
    const watcher = await joinLive(call.sessionId, call.token, "supervisor");
    const caller = await openStream(call, 1); // real-time playback: the reply is still playing when the switch cuts over
    await caller.say("hello");
    await caller.silence(600);
    await eventually(async () => caller.echoedMarks.length >= 3, 500);
    await watcher.until(() => watcher.ofType("transcript").some((line) => line.role === "agent"));
    expect((await switchTo(call.token, call.sessionId, { provider: "gemini", immediate: true })).status).toBe(200);
    await caller.say("invoice");
    await caller.silence(700);
    await caller.until(() => caller.markedItems().length >= 2);
    const second = caller.markedItems()[1]!;
    await eventually(async () => caller.echoedMarks.some((name) => name.startsWith(`${second}@`)), 500);
    await endCall(call);

    const [cutOver, next] = await turnsOf(call.token, call.sessionId, 2);
    expect(cutOver).toMatchObject({ provider: "openai", interrupted: true });
    expect(cutOver!.firstMarkHeardAt).not.toBeNull();
    expect(next).toMatchObject({ provider: "gemini", interrupted: false });
    expectHeardInOrder(next!);
    expect(ms(next!.callerStoppedAt)!).toBeGreaterThan(ms(cutOver!.providerFirstAudioAt)!);
  });

  it("a browser caller echoes no marks: the heard instant and the stages after it are null", async () => {
    const tenantId = await createTenant();
    const { accessToken } = await userWithToken(tenantId, "agent");
    const key = uniqueKey("ear-web");
    await putScenario(key, { replies: ["Welcome to the web line."], callerTranscripts: ["Hello from the browser."] });
    const created = await api("/api/v1/sessions", {
      method: "POST",
      token: accessToken,
      body: { provider: "openai" },
      headers: { "X-Correlation-ID": key },
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const upgrade = await exports.default.fetch(`https://switchboard.test/api/v1/sessions/${id}/live?role=caller`, {
      headers: { Upgrade: "websocket", "CF-Connecting-IP": randomIp(), "Sec-WebSocket-Protocol": `switchboard.v1, bearer.${accessToken}` },
    });
    expect(upgrade.status).toBe(101);
    const browser = upgrade.webSocket!;
    browser.binaryType = "arraybuffer";
    browser.accept();
    let agentAudioBytes = 0;
    browser.addEventListener("message", (event) => {
      if (typeof event.data !== "string") agentAudioBytes += (event.data as ArrayBuffer).byteLength;
    });
    await speak(browser, await callerSpeech("hello", "pcm16", 16000));
    await speak(browser, new Uint8Array(16000)); // half a second of silence ends the turn
    await eventually(async () => agentAudioBytes >= 16000, 500);
    expect((await api(`/api/v1/sessions/${id}/end`, { method: "POST", token: accessToken })).status).toBe(200);
    browser.close(1000, "test done");

    const [turn] = await turnsOf(accessToken, id, 1);
    expect(turn).toMatchObject({ provider: "openai", firstMarkHeardAt: null, stages: { carrierMs: null, earMs: null } });
    const [stopped, firstAudio, firstFrame] = [turn!.callerStoppedAt, turn!.providerFirstAudioAt, turn!.firstFrameSentAt].map(ms);
    expect(stopped!).toBeLessThanOrEqual(firstAudio!);
    expect(firstAudio!).toBeLessThanOrEqual(firstFrame!);
    expect(turn!.stages.providerMs! + turn!.stages.platformMs!).toBe(firstFrame! - stopped!);
  });
});
