import { expect } from "vitest";
import { callByCarrierId } from "./calls.ts";
import { eventually, parseStreamTwiml, postTwilio, randomCallSid, twilioCallParams } from "./carriers.ts";
import { openStream, transcriptOf } from "./media-caller.ts";
import { putScenario, uniqueKey } from "./provider-simulator.ts";

/**
 * An inbound Twilio call to `number` (answered by the simulated OpenAI provider) in which the caller says `said`
 * (the simulator's scripted caller transcript) and then types a DTMF digit; resolves once the transcript holds the
 * digit's line and D1 the digit's event, with the stored transcript and the call's events. `beforeStream` runs once
 * the call's session exists, before any audio (a /live watcher opens there).
 */
export async function spokenCall(options: {
  token: string;
  number: string;
  said: string;
  digit?: string;
  from?: string;
  beforeStream?: (sessionId: string) => Promise<void>;
}) {
  const key = uniqueKey("spoken-call");
  await putScenario(key, { callerTranscripts: [options.said], replies: ["Thank you."] });
  const callSid = randomCallSid();
  const params = twilioCallParams(callSid, options.number, "ringing", options.from ? { From: options.from } : {});
  const response = await postTwilio("/telephony/twilio/voice", params, { headers: { "X-Correlation-ID": key } });
  expect(response.status).toBe(200);
  const stream = parseStreamTwiml(await response.text());
  const sessionId = stream.url.split("/").at(-1)!;
  await options.beforeStream?.(sessionId);
  const caller = await openStream({ streamUrl: stream.url, callSid, mediaToken: stream.token }, 8);
  await caller.say("hello");
  await caller.silence(700);
  caller.dtmf(options.digit ?? "4");
  const transcript = await transcriptOf(options.token, sessionId, (lines) => lines.some((line) => line.text.startsWith("[DTMF]")));
  // The digit's event reaches D1 with the media frames' settling drain (up to 2 s after it), on a timer of its own:
  // under load it can come after the transcript's line.
  const call = await eventually(async () => {
    const found = await callByCarrierId(options.token, callSid);
    return found.events.some((event) => event.event === "media.dtmf") && found;
  }, 250);
  return { sessionId, callSid, transcript, call, events: call.events };
}
