import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../../workers/index.ts";

/** Security headers on every HTTP answer, and cross-origin API access only for origins named in a setting. */
async function fetchWith(request: Request, overrides: Record<string, unknown> = {}) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(request, { ...env, ...overrides } as Env, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

describe("security headers", () => {
  it("every API, health and carrier answer forbids framing, sniffing and referrers; the API loads nothing", async () => {
    for (const path of ["/health", "/api/v1/sessions", "/api/v1/nowhere", "/telephony/twilio/status"]) {
      const response = await exports.default.fetch(`https://switchboard.test${path}`, {
        method: path.startsWith("/telephony") ? "POST" : "GET",
      });
      await response.arrayBuffer();
      expect(response.headers.get("X-Content-Type-Options"), path).toBe("nosniff");
      expect(response.headers.get("Referrer-Policy"), path).toBe("no-referrer");
      expect(response.headers.get("X-Frame-Options"), path).toBe("DENY");
      expect(response.headers.get("Content-Security-Policy"), path).toBe("default-src 'none'; frame-ancestors 'none'");
    }
  });

  it("the docs page may load its script but not be framed", async () => {
    const response = await exports.default.fetch("https://switchboard.test/docs");
    await response.arrayBuffer();
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Security-Policy")).toBe("frame-ancestors 'none'");
  });
});

describe("CORS", () => {
  const preflight = (origin: string) =>
    new Request("https://switchboard.test/api/v1/sessions", {
      method: "OPTIONS",
      headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type" },
    });

  it("allows no origin by default", async () => {
    const response = await fetchWith(preflight("https://console.example.com"));
    expect(response.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("allows exactly the configured origins, and none when the setting is malformed", async () => {
    const configured = { CORS_ALLOWED_ORIGINS: "https://console.example.com, http://localhost:5173" };
    const allowed = await fetchWith(preflight("https://console.example.com"), configured);
    expect(allowed.headers.get("Access-Control-Allow-Origin")).toBe("https://console.example.com");
    expect(allowed.headers.get("Access-Control-Allow-Headers")?.toLowerCase()).toContain("authorization");
    const other = await fetchWith(preflight("https://evil.example.com"), configured);
    expect(other.headers.get("Access-Control-Allow-Origin")).toBeNull();
    const malformed = await fetchWith(preflight("https://console.example.com"), { CORS_ALLOWED_ORIGINS: "console.example.com/path" });
    expect(malformed.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });
});
