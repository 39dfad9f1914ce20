import { createExecutionContext, createScheduledController, evictDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import worker from "../../../workers/index.ts";
import { recordingPrefix } from "../../../workers/shared/recording-format.ts";
import { recordingLinkSignature } from "../../../workers/shared/recordings.ts";
import { TEST_RECORDING_SIGNING_KEY } from "../../support/test-settings.ts";
import { concatBytes, rms } from "../support/audio-signals.ts";
import { dropStream } from "../support/call-faults.ts";
import { tenantWithNumbers, twilioStatus } from "../support/calls.ts";
import { eventually, parseStreamTwiml, postTwilio, randomCallSid, twilioCallParams } from "../support/carriers.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { closeLiveBrowsers, joinLive, type LiveBrowser } from "../support/live-browser.ts";
import { openStream, type TwilioMediaCaller } from "../support/media-caller.ts";
import { callerSpeech, putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";
import { download, frequencyOf, mulawSamples, parseWav, recordingOf, silenceBytes, toneBytes } from "../support/recordings.ts";

/**
 * Recordings with consent, end to end: a Twilio call (its media caller plays agent audio in real time and echoes
 * marks as Twilio does) answered by the OpenAI simulator through the real Worker and the call's object; the recording
 * is read back through the Sessions API and its signed link, and parsed as a WAV: the left channel is exactly what the
 * caller sent, the right exactly the agent audio the caller heard, cut where the barge-in cut it.
 */

const CONSENT = "This call is recorded for quality.";
/** Long enough (≈ 9 s of speech) that the caller is still hearing it when they talk over it. */
const LONG_REPLY =
  "Thanks for calling about your invoice. I can see three open items on your account, the oldest from last March. " +
  "Let me walk you through each one in turn.";

const stubOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));

/** A tenant with a Twilio number (recording as asked) and an inbound call to it whose correlation id is `key`. */
async function callTo(key: string, recording: "on" | "off", provider: "openai" | "local" = "openai") {
  const { token, numbers, tenantId } = await tenantWithNumbers([{ carrier: "twilio", provider }]);
  const patched = await api("/api/v1/tenant/settings", { method: "PATCH", token, body: { recording, consentMessage: CONSENT } });
  expect(patched.status).toBe(200);
  const number = numbers[0]!;
  const callSid = randomCallSid();
  const response = await postTwilio("/telephony/twilio/voice", twilioCallParams(callSid, number, "ringing"), {
    headers: { "X-Correlation-ID": key },
  });
  expect(response.status).toBe(200);
  const twiml = await response.text();
  const stream = parseStreamTwiml(twiml);
  return {
    token,
    tenantId,
    number,
    callSid,
    twiml,
    sessionId: stream.url.split("/").at(-1)!,
    streamUrl: stream.url,
    mediaToken: stream.token,
  };
}

/** The agent audio the caller received, by the item its marks name (each chunk is followed by its mark). */
function agentAudioByItem(caller: TwilioMediaCaller): Map<string, Int16Array> {
  const chunks = new Map<string, Uint8Array[]>();
  let unmarked: Uint8Array[] = [];
  for (const message of caller.received) {
    if (message.payload) unmarked.push(Uint8Array.from(atob(message.payload), (char) => char.charCodeAt(0)));
    if (message.mark) {
      const item = message.mark.slice(0, message.mark.lastIndexOf("@"));
      chunks.set(item, [...(chunks.get(item) ?? []), ...unmarked]);
      unmarked = [];
    }
  }
  return new Map([...chunks].map(([item, parts]) => [item, mulawSamples(concatBytes(...parts))]));
}

/** Where `needle` first occurs in `haystack`, sample for sample; -1 when nowhere. */
function indexOfSamples(haystack: Int16Array, needle: Int16Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The first `length`-sample window from `from` on that is not quiet (speech pauses between words). */
function audibleWindow(samples: Int16Array, from: number, length: number): Int16Array {
  for (let at = from; at + length <= samples.length; at += 80) {
    const window = samples.subarray(at, at + length);
    if (rms(window) > 500) return window;
  }
  throw new Error("no audible window");
}

/**
 * A 2 s 1 kHz tone on the call's stream, then the stream dropped once the part holding it is in R2 (uploaded off the
 * audio path): what an object that goes, or a call that ends unannounced, leaves behind.
 */
async function toneThenDrop(call: Awaited<ReturnType<typeof callTo>>) {
  const caller = await openStream(call, 4);
  const tone = toneBytes(1000, 2000);
  await caller.speak(tone);
  const prefix = recordingPrefix(call.tenantId, call.sessionId);
  await eventually(async () => (await env.RECORDINGS.list({ prefix })).objects.length > 0, 1000);
  await dropStream(caller);
  return { tone, prefix };
}

/** A 16 kHz PCM16 tone for a web caller's microphone. */
function pcm16Tone(hz: number, ms: number): Uint8Array {
  const tone = new Int16Array(16 * ms);
  for (let i = 0; i < tone.length; i++) tone[i] = Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / 16000));
  return new Uint8Array(tone.buffer);
}

/** Sends PCM16 in 20 ms frames at twice real time (the platform drops a microphone far faster than that). */
async function speakInto(browser: LiveBrowser, microphone: Uint8Array): Promise<void> {
  for (let offset = 0; offset < microphone.length; offset += 640) {
    browser.socket.send(microphone.slice(offset, offset + 640));
    if ((offset / 640) % 2 === 1) await sleep(20);
  }
}

/**
 * A recording tenant with `consentMessage`, a web session on the OpenAI simulator answering `replies`, and its
 * caller's browser joined on `/live`.
 */
async function webCaller(key: string, consentMessage: string, replies: string[]) {
  const tenantId = await createTenant();
  const { accessToken: token } = await userWithToken(tenantId, "admin");
  const changed = await api("/api/v1/tenant/settings", { method: "PATCH", token, body: { recording: "on", consentMessage } });
  expect(changed.status).toBe(200);
  await putScenario(key, { replies });
  const created = await api("/api/v1/sessions", {
    method: "POST",
    token,
    body: { provider: "openai" },
    headers: { "X-Correlation-ID": key },
  });
  expect(created.status).toBe(201);
  const session = (await created.json()) as { id: string };
  return { token, session, browser: await joinLive(session.id, token, "caller") };
}

/** How many `input_audio_buffer.append` messages the OpenAI simulator got for the session tagged `key`. */
async function appendsFor(key: string): Promise<number> {
  return (await simulatorConnections(key))
    .flatMap((connection) => connection.clientMessages.entries)
    .filter((entry) => entry.type === "input_audio_buffer.append").length;
}

describe("recordings with consent", () => {
  afterEach(closeLiveBrowsers);

  it("a recorded call: consent before the stream; a WAV with the caller's audio left and what the caller heard of the agent right, cut at the barge-in", async () => {
    const key = uniqueKey("recorded");
    await putScenario(key, { replies: [LONG_REPLY, "Of course, go ahead."], callerTranscripts: ["Hi there.", "Wait, sorry."] });
    const call = await callTo(key, "on");
    // Twilio runs TwiML in order: the consent is said, then the stream (and the agent) starts.
    expect(call.twiml.indexOf(`<Say>${CONSENT}</Say>`)).toBeGreaterThan(-1);
    expect(call.twiml.indexOf(`<Say>${CONSENT}</Say>`)).toBeLessThan(call.twiml.indexOf("<Connect>"));
    await eventually(async () => (await simulatorConnections(key)).length === 1);

    const caller = await openStream(call, 1);
    const sent: Uint8Array[] = [];
    const send = async (bytes: Uint8Array) => {
      sent.push(bytes);
      await caller.speak(bytes);
    };
    // The caller's 1 kHz tone, then silence: the provider hears a turn and answers at length.
    await send(toneBytes(1000, 800));
    await send(silenceBytes(1200));
    await caller.until(() => caller.echoedMarks.length >= 10);
    await send(await callerSpeech("interrupt", "pcmu", 8000));
    await caller.until(() => caller.count("clear") > 0);
    const [cutItem, nextItem] = await eventually(async () => {
      const items = caller.markedItems();
      return items.length >= 2 && items;
    }, 500);
    // The second reply plays out in full (every mark sent has come back, and no more come), then the caller's line
    // stays open a while longer.
    let marksSent = -1;
    await eventually(async () => {
      await sleep(400);
      const settled = caller.count("mark") === caller.echoedMarks.length && caller.count("mark") === marksSent;
      marksSent = caller.count("mark");
      return settled;
    }, 100);
    await send(silenceBytes(12_000));
    const [connection] = await simulatorConnections(key);
    const truncation = connection!.truncations.entries.find((entry) => entry.itemId === cutItem);
    expect(truncation).toBeDefined();

    expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 5 })).status).toBe(204);
    const recording = await recordingOf(call.token, call.sessionId);
    expect(recording).toMatchObject({ channels: 2, format: "wav" });
    expect(Date.parse(recording.expiresAt)).toBeGreaterThan(0);

    const response = await download(recording.url);
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toBe("audio/wav");
    const wav = parseWav(new Uint8Array(await response.arrayBuffer()));
    // Twilio's µ-law both ways: recorded as it came off the wire (format tag 7, a byte a sample), never decoded.
    expect(wav).toMatchObject({ formatTag: 7, channels: 2, sampleRate: 8000, bitsPerSample: 8 });

    // The caller's stream is the call's clock: the recording lasts as long as what the caller sent (± one frame).
    const callerSent = mulawSamples(concatBytes(...sent));
    expect(Math.abs(wav.left.length - callerSent.length)).toBeLessThanOrEqual(160);
    expect(Math.abs(recording.durationMs - callerSent.length / 8)).toBeLessThanOrEqual(20);
    // Left: exactly what the caller sent, the tone first.
    expect(wav.left.subarray(0, callerSent.length)).toEqual(callerSent.subarray(0, wav.left.length));
    expect(rms(wav.left.subarray(0, 8 * 800))).toBeGreaterThan(3000);
    // Right: silent while the caller's tone played (the agent had not spoken yet).
    expect(rms(wav.right.subarray(0, 8 * 800))).toBe(0);

    // Right: the cut reply exactly as far as the caller heard it (the heard time the provider was told), no further.
    const audio = agentAudioByItem(caller);
    const cut = audio.get(cutItem!)!;
    const heardSamples = 8 * truncation!.audioEndMs;
    expect(heardSamples).toBeGreaterThan(0);
    expect(heardSamples).toBeLessThan(cut.length);
    const start = indexOfSamples(wav.right, cut.subarray(0, 400));
    expect(start).toBeGreaterThanOrEqual(8 * 800);
    // (The heard time is in whole milliseconds: the last one may be a part.)
    expect(wav.right.subarray(start, start + heardSamples - 8)).toEqual(cut.subarray(0, heardSamples - 8));
    // What followed the heard point (sent, never heard) is nowhere in the recording.
    expect(indexOfSamples(wav.right, audibleWindow(cut, heardSamples + 160, 400))).toBe(-1);
    // The next reply, heard in full, follows.
    const next = audio.get(nextItem!)!;
    const nextStart = indexOfSamples(wav.right, next.subarray(0, 400), start + heardSamples - 8);
    expect(nextStart).toBeGreaterThan(start);
    expect(wav.right.subarray(nextStart, nextStart + next.length)).toEqual(next);
  });

  it("signed links: the WAV with a valid link and no bearer; altered, expired or unsigned links 403; another tenant's session 404", async () => {
    const key = uniqueKey("links");
    await putScenario(key, { replies: ["Hello."] });
    const call = await callTo(key, "on");
    const caller = await openStream(call, 4);
    await caller.speak(toneBytes(440, 400));
    await caller.speak(silenceBytes(600));
    expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 5 })).status).toBe(204);
    const recording = await recordingOf(call.token, call.sessionId);
    const url = new URL(recording.url);
    expect(url.pathname).toBe(`/recordings/${recording.id}`);
    expect((await download(url.toString())).status).toBe(200);

    const altered = new URL(url);
    const sig = altered.searchParams.get("sig")!;
    altered.searchParams.set("sig", `${sig.slice(0, -1)}${sig.endsWith("A") ? "B" : "A"}`);
    expect((await download(altered.toString())).status).toBe(403);
    const later = new URL(url);
    later.searchParams.set("exp", String(Number(url.searchParams.get("exp")) + 3600));
    expect((await download(later.toString())).status).toBe(403);
    const unsigned = new URL(url);
    unsigned.searchParams.delete("sig");
    expect((await download(unsigned.toString())).status).toBe(403);
    // Signed with the right key, but its time is up.
    const past = Math.floor(Date.now() / 1000) - 1;
    const expired = `https://switchboard.test/recordings/${recording.id}?exp=${past}&sig=${await recordingLinkSignature(TEST_RECORDING_SIGNING_KEY, recording.id, past)}`;
    expect((await download(expired)).status).toBe(403);

    const stranger = await tenantWithNumbers([]);
    expect((await api(`/api/v1/sessions/${call.sessionId}/recording`, { token: stranger.token })).status).toBe(404);
  });

  it("recording off: no consent said, no recording (404), nothing in R2", async () => {
    const key = uniqueKey("unrecorded");
    await putScenario(key, { replies: ["Hello."] });
    const call = await callTo(key, "off");
    expect(call.twiml).not.toContain("<Say>");
    const caller = await openStream(call, 4);
    await caller.speak(toneBytes(440, 400));
    await caller.speak(silenceBytes(600));
    expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 5 })).status).toBe(204);
    await eventually(async () => {
      const response = await api(`/api/v1/calls?limit=1`, { token: call.token });
      return ((await response.json()) as { items: Array<{ status: string }> }).items[0]?.status === "completed";
    });
    expect((await api(`/api/v1/sessions/${call.sessionId}/recording`, { token: call.token })).status).toBe(404);
    const listed = await env.RECORDINGS.list({ prefix: recordingPrefix(call.tenantId, call.sessionId) });
    expect(listed.objects).toEqual([]);
  });

  it("an object evicted mid-call still leaves a playable file: the parts it had uploaded, served as they are", async () => {
    // On the offline engine: an object holding an outbound provider socket cannot be evicted in a test (see
    // voice-faults.test.ts); a deploy drops every socket anyway.
    const call = await callTo(uniqueKey("evicted"), "on", "local");
    const { tone, prefix } = await toneThenDrop(call);
    await evictDurableObject(stubOf(call.sessionId));

    expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 5 })).status).toBe(204);
    const recording = await recordingOf(call.token, call.sessionId);
    const response = await download(recording.url);
    expect(response.status).toBe(200);
    const wav = parseWav(new Uint8Array(await response.arrayBuffer()));
    expect(wav).toMatchObject({ formatTag: 7, channels: 2 });
    expect(wav.left.length).toBeGreaterThanOrEqual(8 * 1000);
    expect(wav.left.subarray(0, 8 * 1000)).toEqual(mulawSamples(tone).subarray(0, 8 * 1000));
    // Nothing was joined: the parts are the recording, and the file is exactly their bytes behind its header.
    const objects = (await env.RECORDINGS.list({ prefix })).objects;
    expect(objects.every((object) => object.key.startsWith(`${prefix}parts/`) && object.key.endsWith(".pcmu"))).toBe(true);
    expect(objects.reduce((sum, object) => sum + object.size, 0)).toBe(2 * wav.left.length);
    expect(Number(response.headers.get("Content-Length"))).toBe(58 + 2 * wav.left.length);
  });

  it("a call whose object was replaced by a deploy: the earlier code's PCM16 parts and this code's µ-law parts are one PCM16 WAV, in order", async () => {
    const call = await callTo(uniqueKey("across-deploy"), "on", "local");
    // What the object before the deploy left: interleaved PCM16 (a 440 Hz tone left, silence right), numbered from 0.
    const earlier = new Int16Array(8 * 300);
    for (let i = 0; i < earlier.length; i++) earlier[i] = Math.round(6000 * Math.sin((2 * Math.PI * 440 * i) / 8000));
    const interleaved = new Int16Array(2 * earlier.length);
    for (let i = 0; i < earlier.length; i++) interleaved[2 * i] = earlier[i]!;
    const prefix = recordingPrefix(call.tenantId, call.sessionId);
    await env.RECORDINGS.put(`${prefix}parts/00000000`, new Uint8Array(interleaved.buffer));
    // The deploy replaced the object: the one that goes on finds the call in its storage, so it lists what was left.
    await evictDurableObject(stubOf(call.sessionId));
    const caller = await openStream(call, 4);
    const tone = toneBytes(1000, 600);
    await caller.speak(tone);
    await caller.speak(silenceBytes(400));
    expect((await twilioStatus(call.callSid, call.number, "completed", { sequence: 5 })).status).toBe(204);

    const wav = parseWav(new Uint8Array(await (await download((await recordingOf(call.token, call.sessionId)).url)).arrayBuffer()));
    expect(wav).toMatchObject({ formatTag: 1, channels: 2, bitsPerSample: 16 });
    expect(wav.left.subarray(0, earlier.length)).toEqual(earlier);
    expect(rms(wav.right.subarray(0, earlier.length))).toBe(0);
    const after = mulawSamples(tone);
    expect(wav.left.subarray(earlier.length, earlier.length + after.length)).toEqual(after);
    const keys = (await env.RECORDINGS.list({ prefix })).objects.map((object) => object.key);
    expect(keys.every((key) => key === `${prefix}parts/00000000` || key.endsWith(".pcm16"))).toBe(true);
  });

  it("a call whose end only the reconcile cron learns still leaves a playable file with its link", async () => {
    const call = await callTo(uniqueKey("reconciled"), "on", "local");
    const { tone } = await toneThenDrop(call);
    // No final webhook ever comes; the call has had no news for two hours.
    const listed = (await (await api("/api/v1/calls?limit=1", { token: call.token })).json()) as { items: Array<{ id: string }> };
    await env.DB.prepare("UPDATE calls SET updated_at = updated_at - 7200000 WHERE id = ?").bind(listed.items[0]!.id).run();

    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "*/5 * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    const recording = await recordingOf(call.token, call.sessionId);
    const wav = parseWav(new Uint8Array(await (await download(recording.url)).arrayBuffer()));
    expect(wav).toMatchObject({ formatTag: 7, channels: 2 });
    expect(wav.left.subarray(0, 8 * 1000)).toEqual(mulawSamples(tone).subarray(0, 8 * 1000));
  });

  it("a web session is recorded too: the browser's 16 kHz microphone on the left at 8 kHz, the agent on the right", async () => {
    const consentMessage = "This web call is recorded for training.";
    const { token, session, browser } = await webCaller(uniqueKey("web-recorded"), consentMessage, ["Welcome to the web line."]);
    // The browser is told what to say before the agent: the session is recorded. Said, it tells the platform.
    const hello = await browser.next("hello");
    expect(hello.consent).toBe(consentMessage);
    browser.send({ type: "consent_heard" });

    // A 1 kHz tone (PCM16 16 kHz, 20 ms frames), then silence so the provider answers.
    await speakInto(browser, concatBytes(pcm16Tone(1000, 800), new Uint8Array(32 * 600)));
    await eventually(async () => browser.audioBytes >= 16_000, 500);
    expect((await api(`/api/v1/sessions/${session.id}/end`, { method: "POST", token })).status).toBe(200);

    const recording = await recordingOf(token, session.id);
    const wav = parseWav(new Uint8Array(await (await download(recording.url)).arrayBuffer()));
    // A browser's PCM16 stays PCM16 (resampled to the recording's 8 kHz).
    expect(wav).toMatchObject({ formatTag: 1, channels: 2, sampleRate: 8000, bitsPerSample: 16 });
    // The tone, resampled to 8 kHz, is still a 1 kHz tone on the left; the agent, silent meanwhile, is on the right.
    const left = wav.left.subarray(0, 8 * 800);
    expect(rms(left)).toBeGreaterThan(3000);
    expect(frequencyOf(left, 8000)).toBeGreaterThan(960);
    expect(frequencyOf(left, 8000)).toBeLessThan(1040);
    expect(rms(wav.right.subarray(0, 8 * 800))).toBe(0);
    expect(rms(wav.right)).toBeGreaterThan(100);
    expect(wav.left.length).toBeGreaterThanOrEqual(8 * 1400 - 160);
  });
  it("a recorded web session's caller is heard only once the browser has said the consent: before, the microphone reaches neither the agent nor the recording", async () => {
    const consentMessage = `This web call is recorded.${" Please stay on the line while we say so.".repeat(4)}`;
    const key = uniqueKey("web-consent-held");
    const { token, session, browser } = await webCaller(key, consentMessage, ["You are heard now."]);
    expect((await browser.next("hello")).consent).toBe(consentMessage);
    // Talking over the consent: a 500 Hz tone and a pause that would end a turn. Nothing reaches the agent.
    await speakInto(browser, concatBytes(pcm16Tone(500, 800), new Uint8Array(32 * 600)));
    // A supervisor cannot say it for the caller.
    const supervisor = await joinLive(session.id, token, "supervisor");
    supervisor.send({ type: "consent_heard" });
    expect(await supervisor.next("error")).toMatchObject({ code: "forbidden" });
    expect(await appendsFor(key)).toBe(0);
    expect(browser.audioBytes).toBe(0);

    browser.send({ type: "consent_heard" });
    await speakInto(browser, concatBytes(pcm16Tone(1000, 800), new Uint8Array(32 * 600)));
    await eventually(async () => browser.audioBytes >= 16_000, 500);
    expect(await appendsFor(key)).toBeGreaterThan(0);
    expect((await api(`/api/v1/sessions/${session.id}/end`, { method: "POST", token })).status).toBe(200);

    // The recording begins with what the caller said after the consent: the 1 kHz tone, not the 500 Hz one.
    const wav = parseWav(new Uint8Array(await (await download((await recordingOf(token, session.id)).url)).arrayBuffer()));
    const head = wav.left.subarray(0, 8 * 700);
    expect(rms(head)).toBeGreaterThan(3000);
    expect(frequencyOf(head, 8000)).toBeGreaterThan(960);
    expect(frequencyOf(head, 8000)).toBeLessThan(1040);
    // And only that: 800 ms of tone on the left, none of the 800 ms said over the consent.
    let audible = 0;
    for (let at = 0; at + 160 <= wav.left.length; at += 160) if (rms(wav.left.subarray(at, at + 160)) > 1000) audible++;
    expect(audible).toBeGreaterThanOrEqual(38);
    expect(audible).toBeLessThanOrEqual(41);
  });

  it("a browser that never reports the consent said holds the caller only for the time it takes to say it", async () => {
    // "Recorded." takes the platform's allowance of 2 s and 90 ms a character: about 2.8 s.
    const key = uniqueKey("web-consent-deadline");
    const { browser } = await webCaller(key, "Recorded.", ["Still here."]);
    expect((await browser.next("hello")).consent).toBe("Recorded.");
    await speakInto(browser, concatBytes(pcm16Tone(500, 400), new Uint8Array(32 * 600)));
    expect(await appendsFor(key)).toBe(0);
    await sleep(3_000);
    await speakInto(browser, concatBytes(pcm16Tone(1000, 800), new Uint8Array(32 * 600)));
    await eventually(async () => browser.audioBytes >= 16_000, 500);
    expect(await appendsFor(key)).toBeGreaterThan(0);
  });
});
