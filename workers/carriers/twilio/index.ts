import { requireSettings } from "../../shared/settings.ts";
import type { Carrier } from "../carrier.ts";
import { twilioCommands } from "./commands.ts";
import { twilioMedia } from "./media-stream.ts";
import { TwilioRest } from "./rest.ts";
import { twilioRoutes } from "./routes.ts";

/** Twilio: form webhooks signed with HMAC-SHA1, TwiML answers, Media Streams (µ-law), the REST API for commands. */
export const twilio: Carrier = {
  name: "twilio",
  routes: twilioRoutes,
  mediaStream: twilioMedia,
  reordersMedia: false,
  authenticatesInStream: true,
  answersByCommand: false,
  // Twilio Media Streams are µ-law both ways, whatever the number's codec.
  mediaEncoding: () => "pcmu",
  commands: twilioCommands,
  holdsNumber: (env, e164) => new TwilioRest(requireSettings(env, "twilio")).holdsNumber(e164),
  sendSms: async (env, message) => ({ messageId: (await new TwilioRest(requireSettings(env, "twilio")).sendMessage(message)).sid }),
};
