import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { api, createTenant, errorOf, userWithToken } from "../support/identity.ts";

let admin: Awaited<ReturnType<typeof userWithToken>>;
const userCount = async () =>
  (await env.DB.prepare("SELECT COUNT(*) AS n FROM users WHERE tenant_id = ?").bind(admin.tenantId).first<{ n: number }>())!.n;

beforeAll(async () => {
  admin = await userWithToken(await createTenant(), "admin");
});

describe("bad input gets a clear 4xx in the error shape and writes nothing", () => {
  const valid = { email: "new.user@example.test", password: "a-long-enough-password", role: "viewer" };
  const cases: Array<[string, { rawBody?: string; body?: unknown; headers?: Record<string, string> }, number, string]> = [
    ["malformed JSON", { rawBody: '{"email": "a@b.c",', headers: { "Content-Type": "application/json" } }, 400, "malformed_request"],
    [
      "wrong content type",
      { rawBody: "email=a@b.c", headers: { "Content-Type": "application/x-www-form-urlencoded" } },
      415,
      "unsupported_media_type",
    ],
    [
      "oversized body",
      { rawBody: JSON.stringify({ ...valid, pad: "x".repeat(70_000) }), headers: { "Content-Type": "application/json" } },
      413,
      "payload_too_large",
    ],
    ["unknown field", { body: { ...valid, isSuperuser: true } }, 400, "validation_failed"],
    ["wrong type", { body: { ...valid, role: 7 } }, 400, "validation_failed"],
    ["missing field", { body: { email: valid.email } }, 400, "validation_failed"],
  ];

  for (const [name, request, status, code] of cases) {
    it(name, async () => {
      const before = await userCount();
      const response = await api("/api/v1/users", { method: "POST", token: admin.accessToken, ...request });
      expect(response.status).toBe(status);
      const error = await errorOf(response);
      expect(error.code).toBe(code);
      expect(error.correlationId).toBe(response.headers.get("X-Correlation-ID"));
      expect(JSON.stringify(error)).not.toMatch(/at .*\.(ts|js):\d+|stack/i);
      expect(await userCount()).toBe(before);
    });
  }

  it("validation details name the field but never echo its value", async () => {
    const response = await api("/api/v1/users", { method: "POST", token: admin.accessToken, body: { ...valid, password: "tiny-pw" } });
    expect(response.status).toBe(400);
    const text = await response.text();
    expect(text).toContain("password");
    expect(text).not.toContain("tiny-pw");
  });
});

describe("routing and correlation", () => {
  it("unknown routes answer JSON 404; wrong methods answer 405 with Allow", async () => {
    const missing = await api("/api/v1/nothing-here");
    expect(missing.status).toBe(404);
    expect((await errorOf(missing)).code).toBe("not_found");
    const wrongMethod = await api("/api/v1/auth/login", { method: "GET" });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("Allow")).toBe("POST");
    expect((await errorOf(wrongMethod)).code).toBe("method_not_allowed");
  });

  it("echoes a valid X-Correlation-ID and replaces a hostile one", async () => {
    const kept = await api("/health", { headers: { "X-Correlation-ID": "req-12345678" } });
    expect(kept.headers.get("X-Correlation-ID")).toBe("req-12345678");
    const replaced = await api("/health", { headers: { "X-Correlation-ID": "bad id <script>" } });
    expect(replaced.headers.get("X-Correlation-ID")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("serves the OpenAPI 3.1 document and the docs page", async () => {
    const doc = (await (await api("/api/v1/openapi.json")).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toContain("/api/v1/auth/login");
    const docs = await api("/docs");
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain("/api/v1/openapi.json");
  });
});
