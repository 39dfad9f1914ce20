import VoiceResponse from "twilio/lib/twiml/VoiceResponse";
import { BUSY_MESSAGE } from "../carrier.ts";

/**
 * TwiML documents, built with the twilio package's builder (it escapes attributes and text). A recorded call's
 * consent message is said before `<Connect><Stream>`: Twilio runs TwiML in order, so the stream — and with it the
 * recording and anything the agent says — starts only once the caller has heard it.
 */
export function connectStreamTwiml(streamUrl: string, token: string, consent: string | null = null): string {
  const response = new VoiceResponse();
  if (consent) response.say(consent);
  const stream = response.connect().stream({ url: streamUrl });
  stream.parameter({ name: "token", value: token });
  return response.toString();
}

/** What a caller hears when the number is not ours to answer: a polite sentence, then hang up. */
export function rejectionTwiml(sentence = "Sorry, this number is not in service. Goodbye."): string {
  const response = new VoiceResponse();
  response.say(sentence);
  response.hangup();
  return response.toString();
}

/** What a caller past the tenant's concurrency limit hears: the busy message, then the call ends. */
export function busyTwiml(): string {
  return rejectionTwiml(BUSY_MESSAGE);
}

/** The answer to a replayed voice webhook: an empty document, nothing to act on and nothing secret. */
export function acknowledgementTwiml(): string {
  return new VoiceResponse().toString();
}

/** A voicemail left after the beep: the message, then the call ends (Twilio hangs up; nothing more to command). */
export function voicemailTwiml(message: string): string {
  return rejectionTwiml(message);
}

export function holdTwiml(): string {
  const response = new VoiceResponse();
  response.say("Please hold.");
  response.pause({ length: 600 });
  return response.toString();
}

export function dialTwiml(target: string): string {
  const response = new VoiceResponse();
  response.dial(target);
  return response.toString();
}
