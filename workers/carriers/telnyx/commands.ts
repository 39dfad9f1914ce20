import { requireSettings } from "../../shared/settings.ts";
import { BUSY_MESSAGE, type CarrierCall, type CarrierCallState, type CarrierCommands } from "../carrier.ts";
import { mediaCredential } from "../media-credential.ts";
import { type StreamTarget, TelnyxCallControl } from "./call-control.ts";
import { telnyxUrls } from "./urls.ts";
import { encodeClientState } from "./webhook-events.ts";

/** Telnyx's commands for one call: Call Control actions, each with a command id that makes it idempotent. */
export function telnyxCommands(env: Env, call: CarrierCall): CarrierCommands {
  const settings = requireSettings(env, "telnyx");
  const control = new TelnyxCallControl(settings);
  const urls = telnyxUrls(env);
  const clientState = encodeClientState(call.sessionId);
  const commandId = (action: string) => `${action}-${call.sessionId}-${call.commandSeq}`;
  const callControlId = () => {
    if (!call.carrierCallId) throw new Error("the call has no Telnyx call_control_id yet");
    return call.carrierCallId;
  };
  const streamTarget = async (): Promise<StreamTarget> => ({
    streamUrl: urls.stream(call.sessionId, await mediaCredential(settings.MEDIA_STREAM_SECRET, call.sessionId)),
    codec: call.codec,
  });
  return {
    async answer() {
      await control.answer(callControlId(), `answer-${call.sessionId}`, clientState, await streamTarget());
    },
    async place(from) {
      const { callControlId } = await control.dial({
        to: call.to,
        from,
        clientState,
        commandId: `dial-${call.sessionId}`,
        webhookUrl: urls.webhook(),
        // A recorded call's stream (the agent, the recording) starts once its callee has heard the consent.
        target: call.streamAfterConsent ? null : await streamTarget(),
        ...(call.machineDetection && { machineDetection: call.machineDetection === "voicemail" ? "greeting_end" : "detect" }),
      });
      return { carrierCallId: callControlId };
    },
    async hangup() {
      if (!call.carrierCallId) return;
      await control.hangup(call.carrierCallId, commandId("hangup"));
    },
    async hold() {
      await control.stopStreaming(callControlId(), commandId("hold"));
    },
    async resume() {
      await control.startStreaming(callControlId(), commandId("resume"), clientState, await streamTarget());
    },
    async transfer(to) {
      await control.transfer(callControlId(), commandId("transfer"), clientState, to);
      // Completed when Telnyx reports call.bridged.
      return { completed: false };
    },
    async turnAway(step) {
      // Each step once per call (the command ids do not change with the call's events).
      if (step === "arrived") await control.answerWithoutMedia(callControlId(), `busy-answer-${call.sessionId}`, clientState);
      else if (step === "answered") await control.speak(callControlId(), `busy-speak-${call.sessionId}`, clientState, BUSY_MESSAGE);
      else await control.hangup(callControlId(), `busy-hangup-${call.sessionId}`);
    },
    async leaveVoicemail(message) {
      // Once per call; Telnyx reports `call.speak.ended` when it has been said, and the call's object hangs up then.
      await control.speak(callControlId(), `voicemail-speak-${call.sessionId}`, clientState, message);
      return { endsCall: false };
    },
    async consent(step) {
      // Each step once per call (fixed command ids): a retried webhook or a late alarm repeats nothing.
      if (step.step === "answer") await control.answerWithoutMedia(callControlId(), `answer-${call.sessionId}`, clientState);
      else if (step.step === "say") await control.speak(callControlId(), `consent-speak-${call.sessionId}`, clientState, step.message);
      else await control.startStreaming(callControlId(), `consent-stream-${call.sessionId}`, clientState, await streamTarget());
    },
    async currentState(): Promise<CarrierCallState> {
      if (!call.carrierCallId) return { state: "unknown" };
      if (await control.isAlive(call.carrierCallId)) return { state: "live" };
      return { state: "ended", failed: call.answered ? null : "lost" };
    },
  };
}
