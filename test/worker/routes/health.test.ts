import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("GET /health", () => {
  it("reports settings, D1 and KV as healthy", async () => {
    const response = await exports.default.fetch("https://switchboard.test/health");
    expect(response.status).toBe(200);
    expect(response.headers.get("X-Correlation-ID")).toMatch(/^[0-9a-f-]{36}$/);
    const body = await response.json();
    expect(body).toEqual({ status: "ok", checks: { settings: { ok: true }, d1: { ok: true }, kv: { ok: true } } });
  });
});
