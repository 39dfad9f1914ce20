/** Every URL handed to a carrier, built from PUBLIC_BASE_URL (carriers sign and call the public address). */
export function publicUrls(publicBaseUrl: string) {
  const base = new URL(publicBaseUrl);
  const https = `${base.protocol}//${base.host}`;
  const wss = `${base.protocol === "https:" ? "wss:" : "ws:"}//${base.host}`;
  const session = (sessionId?: string) => (sessionId ? `?sessionId=${encodeURIComponent(sessionId)}` : "");
  return {
    twilioVoice: (sessionId?: string) => `${https}/telephony/twilio/voice${session(sessionId)}`,
    twilioStatus: (sessionId?: string) => `${https}/telephony/twilio/status${session(sessionId)}`,
    twilioStream: (sessionId: string) => `${wss}/telephony/twilio/media/${sessionId}`,
    telnyxWebhook: () => `${https}/telephony/telnyx/webhook`,
    telnyxStream: (sessionId: string, token: string) => `${wss}/telephony/telnyx/media/${sessionId}/${token}`,
  };
}
