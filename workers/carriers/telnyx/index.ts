import { requireSettings } from "../../shared/settings.ts";
import type { Carrier } from "../carrier.ts";
import { TelnyxCallControl } from "./call-control.ts";
import { telnyxCommands } from "./commands.ts";
import { telnyxMedia } from "./media-stream.ts";
import { telnyxRoutes } from "./routes.ts";

/** Telnyx: JSON webhooks signed with Ed25519, Call Control commands, media streaming in PCMU or PCMA. */
export const telnyx: Carrier = {
  name: "telnyx",
  routes: telnyxRoutes,
  mediaStream: telnyxMedia,
  // Telnyx does not guarantee the order of media messages.
  reordersMedia: true,
  authenticatesInStream: false,
  answersByCommand: true,
  mediaEncoding: (codec) => (codec === "PCMA" ? "pcma" : "pcmu"),
  commands: telnyxCommands,
  holdsNumber: (env, e164) => new TelnyxCallControl(requireSettings(env, "telnyx")).holdsNumber(e164),
  sendSms: (env, message) => new TelnyxCallControl(requireSettings(env, "telnyx")).sendMessage(message),
};
