import { beforeAll, describe, expect, it } from "vitest";
import { api, createTenant, errorOf, userWithToken } from "../support/identity.ts";

/**
 * `GET/PATCH /api/v1/tenant/settings`: every role reads its own tenant's settings, only admins change them, a change
 * is validated hard (unknown fields, wrong types and out-of-range values are 400 and change nothing) and audited.
 */
let admin: string;
let viewer: string;
let supervisor: string;

beforeAll(async () => {
  const tenantId = await createTenant();
  admin = (await userWithToken(tenantId, "admin")).accessToken;
  viewer = (await userWithToken(tenantId, "viewer")).accessToken;
  supervisor = (await userWithToken(tenantId, "supervisor")).accessToken;
});

const settingsOf = async (token: string): Promise<Record<string, unknown>> => {
  const response = await api("/api/v1/tenant/settings", { token });
  expect(response.status).toBe(200);
  return response.json();
};
/** What a shop reads before choosing: Indian rupees, Indian time. */
const SHOP_DEFAULTS = {
  currency: "INR",
  timezone: "Asia/Kolkata",
  whatsappOperators: [],
  piiRedaction: "off",
  escalation: null,
  recording: "off",
  consentMessage: null,
  retentionDays: null,
};
const patch = (token: string, body: unknown) => api("/api/v1/tenant/settings", { method: "PATCH", token, body });

describe("tenant settings", () => {
  it("reads the defaults before anything is set: no concurrency limit", async () => {
    const tenantId = await createTenant();
    const { accessToken } = await userWithToken(tenantId, "agent");
    expect(await settingsOf(accessToken)).toEqual({ ...SHOP_DEFAULTS, maxConcurrentSessions: null });
  });

  it("an admin sets and clears the limit; every role reads it; the change is audited from → to", async () => {
    const set = await patch(admin, { maxConcurrentSessions: 3 });
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual({ ...SHOP_DEFAULTS, maxConcurrentSessions: 3 });
    expect(await settingsOf(viewer)).toEqual({ ...SHOP_DEFAULTS, maxConcurrentSessions: 3 });

    const cleared = await patch(admin, { maxConcurrentSessions: null });
    expect(await cleared.json()).toEqual({ ...SHOP_DEFAULTS, maxConcurrentSessions: null });
    expect(await settingsOf(supervisor)).toEqual({ ...SHOP_DEFAULTS, maxConcurrentSessions: null });

    const audit = await api("/api/v1/audit-log?limit=100", { token: admin });
    const { items } = (await audit.json()) as { items: Array<{ action: string; details: unknown }> };
    const changes = items.filter((item) => item.action === "tenant.settings_change").map((item) => item.details);
    expect(changes).toEqual(
      expect.arrayContaining([{ maxConcurrentSessions: { from: null, to: 3 } }, { maxConcurrentSessions: { from: 3, to: null } }]),
    );
  });

  it("an admin sets the shop's currency and time zone; both are checked against the runtime's ICU data", async () => {
    const tenantId = await createTenant();
    const { accessToken } = await userWithToken(tenantId, "admin");
    const response = await patch(accessToken, { currency: "JPY", timezone: "Asia/Tokyo" });
    expect(response.status).toBe(200);
    expect(await settingsOf(accessToken)).toEqual({
      currency: "JPY",
      timezone: "Asia/Tokyo",
      maxConcurrentSessions: null,
      whatsappOperators: [],
      piiRedaction: "off",
      escalation: null,
      recording: "off",
      consentMessage: null,
      retentionDays: null,
    });
    expect((await patch(accessToken, { currency: "ZZZ" })).status).toBe(400);
    expect((await settingsOf(accessToken)).currency).toBe("JPY");
  });

  it("only admins change settings", async () => {
    for (const token of [supervisor, viewer]) {
      const response = await patch(token, { maxConcurrentSessions: 1 });
      expect(response.status).toBe(403);
    }
    expect(await settingsOf(admin)).toEqual({ ...SHOP_DEFAULTS, maxConcurrentSessions: null });
  });

  it("refuses malformed changes and keeps the settings as they were", async () => {
    expect((await patch(admin, { maxConcurrentSessions: 5 })).status).toBe(200);
    for (const body of [
      {},
      { maxConcurrentSessions: 0 },
      { maxConcurrentSessions: -2 },
      { maxConcurrentSessions: 1.5 },
      { currency: "inr" },
      { currency: "XYZ" },
      { timezone: "Mars/Olympus" },
      { timezone: 7 },
      { maxConcurrentSessions: "3" },
      { maxConcurrentSessions: 100_001 },
      { maxConcurrentSessions: 2, currencyy: "EUR" },
      [{ maxConcurrentSessions: 2 }],
    ]) {
      const response = await patch(admin, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
    }
    const notJson = await api("/api/v1/tenant/settings", { method: "PATCH", token: admin, rawBody: "maxConcurrentSessions=2" });
    expect(notJson.status).toBe(415);
    expect(await settingsOf(admin)).toEqual({ ...SHOP_DEFAULTS, maxConcurrentSessions: 5 });
  });

  it("names the field at fault, never its value", async () => {
    const response = await patch(admin, { maxConcurrentSessions: -7 });
    const error = await errorOf(response);
    expect(error.code).toBe("validation_failed");
    // Everything but the correlation id (a random UUID may hold "-7" itself).
    const { correlationId: _random, ...rest } = error;
    expect(JSON.stringify(rest)).toContain("maxConcurrentSessions");
    expect(JSON.stringify(rest)).not.toContain("-7");
  });

  it("is the caller's own tenant's: another tenant's limit is neither seen nor changed", async () => {
    expect((await patch(admin, { maxConcurrentSessions: 2 })).status).toBe(200);
    const other = await userWithToken(await createTenant(), "admin");
    expect(await settingsOf(other.accessToken)).toEqual({ ...SHOP_DEFAULTS, maxConcurrentSessions: null });
    expect((await patch(other.accessToken, { maxConcurrentSessions: 9 })).status).toBe(200);
    expect(await settingsOf(admin)).toEqual({ ...SHOP_DEFAULTS, maxConcurrentSessions: 2 });
  });

  it("keeps every change when two admins change different settings at once, on a new row and on an existing one", async () => {
    const tenantId = await createTenant();
    const [first, second] = [(await userWithToken(tenantId, "admin")).accessToken, (await userWithToken(tenantId, "admin")).accessToken];
    const [a, b] = await Promise.all([patch(first, { maxConcurrentSessions: 4 }), patch(second, { recording: "on" })]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(await settingsOf(first)).toEqual({ ...SHOP_DEFAULTS, maxConcurrentSessions: 4, recording: "on" });

    const changes = await Promise.all([
      patch(first, { retentionDays: 30 }),
      patch(second, { piiRedaction: "mask" }),
      patch(first, { consentMessage: "This call is recorded." }),
    ]);
    expect(changes.map((response) => response.status)).toEqual([200, 200, 200]);
    // Each answer is the document as stored once its own change was in: its change, and whatever had landed before.
    expect(await changes[1]!.json()).toMatchObject({ maxConcurrentSessions: 4, recording: "on", piiRedaction: "mask" });
    expect(await settingsOf(second)).toEqual({
      ...SHOP_DEFAULTS,
      maxConcurrentSessions: 4,
      recording: "on",
      retentionDays: 30,
      piiRedaction: "mask",
      consentMessage: "This call is recorded.",
    });
  });
});
