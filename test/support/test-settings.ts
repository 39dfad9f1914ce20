import { webcrypto } from "node:crypto";

/**
 * Settings the worker runs with under test: fresh Ed25519 signing keys each run (two, to exercise rotation),
 * fixed carrier credentials, and simulator URLs from global setup.
 */
export const TEST_TWILIO_ACCOUNT_SID = `AC${"0123456789abcdef".repeat(2)}`;
export const TEST_TWILIO_AUTH_TOKEN = "twilio-test-auth-token-0123456789";
// The Ed25519 test key whose seed is bytes 0x00..0x1f.
export const TEST_TELNYX_PUBLIC_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
export const TEST_PUBLIC_BASE_URL = "https://switchboard.test";
export const TEST_TELNYX_API_KEY = "KEYtelnyx-test-api-key";
// The app secret of protocols.md's WhatsApp signature vector, so the vector's body is accepted as Meta's own.
export const TEST_WHATSAPP_APP_SECRET = "whatsapp-app-secret-0123456789";
export const TEST_WHATSAPP_VERIFY_TOKEN = "whatsapp-verify-token-test";
export const TEST_WHATSAPP_ACCESS_TOKEN = "EAAwhatsapp-test-access-token-0123";
export const TEST_WHATSAPP_PHONE_NUMBER_ID = "106540352242922";
export const TEST_MEDIA_STREAM_SECRET = "media-stream-test-secret-0123456789abcdef";
export const TEST_RECORDING_SIGNING_KEY = "recording-signing-test-key-0123456789abcdef";

async function signingKey(kid: string) {
  const pair = (await webcrypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  return { ...(await webcrypto.subtle.exportKey("jwk", pair.privateKey)), kid };
}

type Inject = (key: "simulators") => Record<string, string>;

export async function testSettings(inject: Inject): Promise<Record<string, string>> {
  const simulators = inject("simulators");
  return {
    PUBLIC_BASE_URL: TEST_PUBLIC_BASE_URL,
    JWT_ISSUER: "https://switchboard.test",
    JWT_AUDIENCE: "switchboard-test",
    JWT_SIGNING_KEYS: JSON.stringify({ keys: [await signingKey("test-key-1"), await signingKey("test-key-2")] }),
    METRICS_TOKEN: "metrics-test-token-0123456789",
    TWILIO_ACCOUNT_SID: TEST_TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN: TEST_TWILIO_AUTH_TOKEN,
    MEDIA_STREAM_SECRET: TEST_MEDIA_STREAM_SECRET,
    TELNYX_API_KEY: TEST_TELNYX_API_KEY,
    TELNYX_PUBLIC_KEY: TEST_TELNYX_PUBLIC_KEY,
    TELNYX_CONNECTION_ID: "test-connection-id",
    // Provider resilience on a test's time scale: fast reconnects, a breaker that half-opens after a second,
    // a provider that has not answered within two seconds counts as stalled.
    PROVIDER_RECONNECT_BASE_MS: "25",
    PROVIDER_BREAKER_OPEN_SECONDS: "1",
    PROVIDER_RESPONSE_TIMEOUT_MS: "2000",
    // Every agent turn asks the fleet registry whether its provider was marked down.
    PROVIDER_FLEET_CHECK_SECONDS: "0",
    // No load shedding: a slow moment of a machine running the whole suite must not turn a test's call away (the
    // worker-shedding project turns it on, vitest.config.ts).
    CALL_SHEDDING_LATENESS_MS: "0",
    HUMAN_TRANSFER_NUMBER: "+15550009999",
    // Telnyx's real ranges (empty is the default): the tests send from them, whatever the loopback-only list a
    // developer's `.dev.vars` holds for `npm run dev` (the test pool reads that file too, under these bindings).
    TELNYX_IP_ALLOWLIST: "",
    WHATSAPP_APP_SECRET: TEST_WHATSAPP_APP_SECRET,
    WHATSAPP_VERIFY_TOKEN: TEST_WHATSAPP_VERIFY_TOKEN,
    WHATSAPP_ACCESS_TOKEN: TEST_WHATSAPP_ACCESS_TOKEN,
    WHATSAPP_PHONE_NUMBER_ID: TEST_WHATSAPP_PHONE_NUMBER_ID,
    // Reminder retries on a test's time scale: 0.2 s, then 0.4 s; the third failure is final.
    REMINDER_RETRY_BASE_SECONDS: "0.2",
    REMINDER_MAX_ATTEMPTS: "3",
    // The simulators' model keys are set, which would make a text model the analysis default: sessions are analysed
    // offline unless a test asks for a model (workers/shared/analysis/run.ts reads the setting per attempt).
    ANALYSIS_PROVIDER: "local",
    RECORDING_SIGNING_KEY: TEST_RECORDING_SIGNING_KEY,
    // Privacy erasure codes go out through miniflare's send_email emulation, which writes each message to disk.
    EMAIL_FROM: "privacy@switchboard.test",
    ...simulators,
  };
}

/** The settings the platform is started with as secrets under test and bench (wrangler stops asking for them). */
export const TEST_SECRET_NAMES = [
  "JWT_SIGNING_KEYS",
  "METRICS_TOKEN",
  "TWILIO_ACCOUNT_SID",
  "TWILIO_AUTH_TOKEN",
  "MEDIA_STREAM_SECRET",
  "RECORDING_SIGNING_KEY",
  "TELNYX_API_KEY",
  "TELNYX_PUBLIC_KEY",
  "TELNYX_CONNECTION_ID",
  "OPENAI_API_KEY",
  "GEMINI_API_KEY",
  "DEEPGRAM_API_KEY",
] as const;
