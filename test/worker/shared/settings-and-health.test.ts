import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../../workers/index.ts";
import { redact } from "../../../workers/shared/logger.ts";
import { ConfigurationError, parseSettings, requireSettings } from "../../../workers/shared/settings.ts";
import { randomCallSid, randomE164, twilioCallParams, twilioSignature } from "../support/carriers.ts";

/** The real Worker, run with a different env: how a misconfigured deployment behaves. */
async function healthWith(
  overrides: Record<string, unknown>,
  headers: Record<string, string> = { Authorization: `Bearer ${env.METRICS_TOKEN}` },
) {
  const ctx = createExecutionContext();
  const request = new Request("https://switchboard.test/health", { headers });
  const response = await worker.fetch(request, { ...env, ...overrides } as Env, ctx);
  await waitOnExecutionContext(ctx);
  return {
    status: response.status,
    body: (await response.json()) as { status: string; checks: Record<string, { ok: boolean; detail?: string }> },
  };
}

describe("settings", () => {
  it("parses the test deployment's settings without problems", () => {
    expect(parseSettings(env).problems).toEqual([]);
  });

  it.each([
    ["PUBLIC_BASE_URL", "not a url"],
    ["PUBLIC_BASE_URL", "https://example.com/with/path"],
    ["TWILIO_ACCOUNT_SID", "XX123"],
    ["TELNYX_PUBLIC_KEY", "c2hvcnQ="],
    ["OPENAI_REALTIME_URL", "https://api.openai.com/v1/realtime"],
    ["PROVIDER_ORDER", "openai,skynet"],
    ["WEBHOOK_MAX_SKEW_SECONDS", "-5"],
    ["JWT_SIGNING_KEYS", "{not json"],
    ["JWT_SIGNING_KEYS", JSON.stringify({ keys: [{ kty: "RSA", kid: "a" }] })],
    ["TWILIO_IP_ALLOWLIST", "10.0.0.0/8,banana"],
  ])("names %s when it is malformed (%s)", (setting, value) => {
    const { problems } = parseSettings({ ...env, [setting]: value });
    expect(problems.map((p) => p.setting)).toEqual([setting]);
  });

  it("a capability missing its settings throws a ConfigurationError naming each one", () => {
    const error = (() => {
      try {
        requireSettings({ ...env, TELNYX_API_KEY: "", TELNYX_CONNECTION_ID: undefined }, "telnyx");
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).problems.map((p) => p.setting).sort()).toEqual(["TELNYX_API_KEY", "TELNYX_CONNECTION_ID"]);
  });

  it("defaults what the contract defaults", () => {
    const { values } = parseSettings({ ...env, TWILIO_API_BASE: "", WEBHOOK_MAX_SKEW_SECONDS: undefined, TELNYX_IP_ALLOWLIST: "" });
    expect(values.TWILIO_API_BASE).toBe("https://api.twilio.com");
    expect(values.WEBHOOK_MAX_SKEW_SECONDS).toBe(300);
    expect(values.TELNYX_IP_ALLOWLIST).toContain("192.76.120.128/29");
  });
});

describe("a malformed setting", () => {
  it("fails closed when it guards carrier traffic: a malformed IP allowlist refuses every webhook, it does not open up", async () => {
    const params = twilioCallParams(randomCallSid(), randomE164(), "ringing");
    const url = "https://switchboard.test/telephony/twilio/voice";
    const request = () =>
      new Request(url, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-www-form-urlencoded",
          "CF-Connecting-IP": "203.0.113.10",
          "X-Twilio-Signature": twilioSignature(url, params),
        },
        body: new URLSearchParams(params).toString(),
      });
    for (const allowlist of ["10.0.0.0/8,banana", "everyone"]) {
      const ctx = createExecutionContext();
      const response = await worker.fetch(request(), { ...env, TWILIO_IP_ALLOWLIST: allowlist } as Env, ctx);
      await waitOnExecutionContext(ctx);
      expect(response.status).toBe(503);
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe("configuration_error");
      // Which setting is wrong is for the operator's log (found by the correlation id), not for whoever called.
      expect(error.message).not.toContain("TWILIO_IP_ALLOWLIST");
    }
    const { problems, values } = parseSettings({ ...env, TELNYX_IP_ALLOWLIST: "banana" });
    expect(problems.map((problem) => problem.setting)).toEqual(["TELNYX_IP_ALLOWLIST"]);
    expect(values.TELNYX_IP_ALLOWLIST).toBeUndefined();
    expect(() => requireSettings({ ...env, WEBHOOK_MAX_SKEW_SECONDS: "-5" }, "telnyx")).toThrow(ConfigurationError);
  });

  it("that only tunes behaviour is reported and keeps its default", () => {
    const { problems, values } = parseSettings({ ...env, PROVIDER_BREAKER_FAILURES: "many", PROVIDER_ORDER: "openai,skynet" });
    expect(problems.map((problem) => problem.setting).sort()).toEqual(["PROVIDER_BREAKER_FAILURES", "PROVIDER_ORDER"]);
    expect(values.PROVIDER_BREAKER_FAILURES).toBe(5);
    expect(values.PROVIDER_ORDER).toEqual(["openai", "gemini", "deepgram", "local"]);
  });
});

describe("GET /health", () => {
  it("answers 503 naming a malformed or missing critical setting", async () => {
    const malformed = await healthWith({ JWT_SIGNING_KEYS: "{oops" });
    expect(malformed.status).toBe(503);
    expect(malformed.body.checks.settings).toEqual({ ok: false, detail: expect.stringContaining("JWT_SIGNING_KEYS") });
    const missing = await healthWith({ PUBLIC_BASE_URL: "" });
    expect(missing.status).toBe(503);
    expect(missing.body.checks.settings!.detail).toContain("PUBLIC_BASE_URL is missing");
  });

  it("tells anyone which check failed, but why only to the metrics token or an admin", async () => {
    for (const headers of [{}, { Authorization: "Bearer not-the-metrics-token-0123" }] as Record<string, string>[]) {
      const anonymous = await healthWith({ JWT_SIGNING_KEYS: "{oops" }, headers);
      expect(anonymous.status).toBe(503);
      expect(anonymous.body.checks).toEqual({ settings: { ok: false }, d1: { ok: true }, kv: { ok: true } });
    }
  });

  it("answers 503 naming D1 or KV when they cannot be reached", async () => {
    const unreachable = {
      prepare: () => {
        throw new Error("D1_ERROR: network");
      },
    };
    const d1 = await healthWith({ DB: unreachable });
    expect(d1.status).toBe(503);
    expect(d1.body.checks.d1!.ok).toBe(false);
    expect(d1.body.checks.kv!.ok).toBe(true);
    const kv = await healthWith({ CACHE: { get: () => Promise.reject(new Error("KV down")) } });
    expect(kv.status).toBe(503);
    expect(kv.body.checks.kv!.ok).toBe(false);
  });
});

describe("log redaction", () => {
  it("never writes secrets, tokens, passwords or audio", () => {
    const line = JSON.stringify(
      redact({
        event: "x",
        password: "hunter2",
        headers: { authorization: "Bearer abc", "x-twilio-signature": "SIGVALUE123" },
        refreshToken: "rt_x",
        apiKey: "sbk_1",
        media: { payload: "AAAA" },
        audio: new Uint8Array(160),
        tenantId: "t1",
      }),
    );
    for (const secret of ["hunter2", "Bearer abc", "SIGVALUE123", "rt_x", "sbk_1", "AAAA"]) expect(line).not.toContain(secret);
    expect(line).toContain("t1");
  });
});
