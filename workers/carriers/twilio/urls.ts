import { publicOrigin } from "../public-origin.ts";

/** The URLs Twilio is handed: its stream URL carries ids only (Twilio strips query strings from it). */
export function twilioUrls(env: object) {
  const { https, wss } = publicOrigin(env);
  const session = (sessionId?: string) => (sessionId ? `?sessionId=${encodeURIComponent(sessionId)}` : "");
  return {
    voice: (sessionId?: string) => `${https}/telephony/twilio/voice${session(sessionId)}`,
    status: (sessionId?: string) => `${https}/telephony/twilio/status${session(sessionId)}`,
    amd: (sessionId: string) => `${https}/telephony/twilio/amd${session(sessionId)}`,
    stream: (sessionId: string) => `${wss}/telephony/twilio/media/${sessionId}`,
  };
}
