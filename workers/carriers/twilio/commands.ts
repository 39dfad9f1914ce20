import { requireSettings } from "../../shared/settings.ts";
import type { CarrierCall, CarrierCallState, CarrierCommands } from "../carrier.ts";
import { mediaCredential } from "../media-credential.ts";
import { TwilioRest } from "./rest.ts";
import { connectStreamTwiml, dialTwiml, holdTwiml, voicemailTwiml } from "./twiml.ts";
import { twilioUrls } from "./urls.ts";

const LIVE = new Set(["queued", "ringing", "in-progress"]);

/** Twilio's commands for one call: the REST API, with TwiML redirects for hold, resume and transfer. */
export function twilioCommands(env: Env, call: CarrierCall): CarrierCommands {
  const settings = requireSettings(env, "twilio");
  const rest = new TwilioRest(settings);
  const urls = twilioUrls(env);
  const callSid = () => {
    if (!call.carrierCallId) throw new Error("the call has no Twilio CallSid yet");
    return call.carrierCallId;
  };
  return {
    // Twilio answers inbound calls with the voice webhook's TwiML.
    answer: async () => {},
    async place(from) {
      const { sid } = await rest.createCall({
        to: call.to,
        from,
        url: urls.voice(call.sessionId),
        statusCallback: urls.status(call.sessionId),
        // Voicemail waits for the end of the machine's greeting (the beep); hanging up needs only the first verdict.
        ...(call.machineDetection && {
          machineDetection: {
            mode: call.machineDetection === "voicemail" ? "DetectMessageEnd" : "Enable",
            callback: urls.amd(call.sessionId),
          },
        }),
      });
      return { carrierCallId: sid };
    },
    async hangup() {
      if (!call.carrierCallId) return;
      await rest.updateCall(call.carrierCallId, { Status: call.answered ? "completed" : "canceled" });
    },
    async hold() {
      await rest.updateCall(callSid(), { Twiml: holdTwiml() });
    },
    async resume() {
      const credential = await mediaCredential(settings.MEDIA_STREAM_SECRET, call.sessionId);
      await rest.updateCall(callSid(), { Twiml: connectStreamTwiml(urls.stream(call.sessionId), credential) });
    },
    async transfer(to) {
      await rest.updateCall(callSid(), { Twiml: dialTwiml(to) });
      // Twilio's <Dial> redirect has no bridged callback: the accepted redirect is the transfer.
      return { completed: true };
    },
    // The voice webhook's TwiML says the busy message and hangs up (`busyTwiml`): there is no step to command.
    turnAway: async () => {},
    // The consent is said by the voice webhook's TwiML, before its stream.
    consent: async () => {},
    async leaveVoicemail(message) {
      // The live call's TwiML is replaced (its stream ends): `<Say>` the message, then `<Hangup/>`.
      await rest.updateCall(callSid(), { Twiml: voicemailTwiml(message) });
      return { endsCall: true };
    },
    async currentState(): Promise<CarrierCallState> {
      if (!call.carrierCallId) return { state: "unknown" };
      const found = await rest.fetchCall(call.carrierCallId);
      if (!found) return { state: "ended", failed: "lost" };
      if (LIVE.has(found.status)) return { state: "live" };
      return { state: "ended", failed: found.status === "completed" ? null : found.status.replace("-", "_") };
    },
  };
}
