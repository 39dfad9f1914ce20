import { publicOrigin } from "../public-origin.ts";

/** The URLs Telnyx is handed; the stream URL carries the call's media credential (Telnyx's upgrade is unsigned). */
export function telnyxUrls(env: object) {
  const { https, wss } = publicOrigin(env);
  return {
    webhook: () => `${https}/telephony/telnyx/webhook`,
    stream: (sessionId: string, credential: string) => `${wss}/telephony/telnyx/media/${sessionId}/${credential}`,
  };
}
