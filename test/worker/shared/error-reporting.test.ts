import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { bareHandler, handlerFor } from "../../../workers/handler.ts";
import { errorReportingOptions } from "../../../workers/shared/error-reporting.ts";
import { parseSettings } from "../../../workers/shared/settings.ts";

/**
 * Error reporting to Sentry is off unless SENTRY_DSN is set (and well formed), and what it would send is held to the
 * logs' rules: the options handed to @sentry/cloudflare, checked as built from the Worker's own settings.
 */
const DSN = "https://0123456789abcdef@o1.ingest.sentry.io/42";

describe("error reporting", () => {
  it("is off without SENTRY_DSN", () => {
    expect(errorReportingOptions(env)).toMatchObject({ enabled: false, dsn: undefined });
  });

  it.each([
    "http://0123456789abcdef@o1.ingest.sentry.io/42",
    "https://o1.ingest.sentry.io/42",
    "https://key@o1.ingest.sentry.io/project",
    "https://key:secret@o1.ingest.sentry.io/42",
    "not a url",
  ])("stays off, reported by name, with a malformed DSN: %s", (value) => {
    const settings = { ...env, SENTRY_DSN: value };
    expect(errorReportingOptions(settings)).toMatchObject({ enabled: false, dsn: undefined });
    expect(parseSettings(settings).problems.map((problem) => problem.setting)).toContain("SENTRY_DSN");
  });

  it("is on with a DSN, and sends no credentials, bodies, query strings, breadcrumbs or personal data", () => {
    const options = errorReportingOptions({ ...env, SENTRY_DSN: DSN });
    expect(options).toMatchObject({ enabled: true, dsn: DSN, tracesSampleRate: 0 });
    expect(options.beforeBreadcrumb()).toBeNull();
    const scrubbed = options.beforeSend({
      request: {
        method: "POST",
        url: "https://switchboard.test/telephony/twilio/voice?token=abc",
        headers: {
          Authorization: "Bearer secret-jwt",
          Cookie: "session=1",
          "X-Twilio-Signature": "sig",
          "Content-Type": "application/x-www-form-urlencoded",
          "X-Correlation-ID": "corr-1",
        },
        cookies: { session: "1" },
        data: "From=%2B15551234567",
        query_string: "token=abc",
      },
      extra: { apiKey: "sk-live", sessionId: "s-1", nested: { password: "p" } },
      user: { id: "u-1", email: "a@example.com", ip_address: "203.0.113.9" } as { id: string },
      breadcrumbs: [{ category: "fetch", data: { url: "wss://gemini.example/ws?key=AIza" } }],
      exception: { values: [{ type: "Error", value: "boom" }] },
    });
    expect(scrubbed).toEqual({
      request: {
        method: "POST",
        url: "https://switchboard.test/telephony/twilio/voice",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Correlation-ID": "corr-1" },
      },
      extra: { apiKey: "[redacted]", sessionId: "s-1", nested: { password: "[redacted]" } },
      user: { id: "u-1" },
      exception: { values: [{ type: "Error", value: "boom" }] },
    });
  });

  it("runs requests through the SDK only when on: off, the Worker's own handler serves them, left uninstrumented", async () => {
    expect(handlerFor(env)).toBe(bareHandler);
    const reported = handlerFor({ ...env, SENTRY_DSN: DSN } as Env);
    expect(reported).not.toBe(bareHandler);
    // The SDK instruments the handler object it is given in place: the bare one must not be that object.
    expect(reported.fetch).not.toBe(bareHandler.fetch);
    // Served bare, a request reaches the app as usual.
    const response = await bareHandler.fetch(new Request("https://switchboard.test/health"), env, createExecutionContext());
    expect([200, 503]).toContain(response.status);
  });
});
