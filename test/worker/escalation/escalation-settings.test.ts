import { beforeAll, describe, expect, it } from "vitest";
import { api, createTenant, errorOf, userWithToken } from "../support/identity.ts";

/**
 * The tenant setting `escalation` through `PATCH /api/v1/tenant/settings`: off by default, set and cleared by admins,
 * and rules the platform cannot apply refused with 422 `invalid_escalation` naming each problem, the settings unchanged.
 */
let admin: string;

beforeAll(async () => {
  admin = (await userWithToken(await createTenant("Escalation settings"), "admin")).accessToken;
});

const patch = (body: unknown) => api("/api/v1/tenant/settings", { method: "PATCH", token: admin, body });
const escalationNow = async () =>
  ((await (await api("/api/v1/tenant/settings", { token: admin })).json()) as { escalation: unknown }).escalation;

const RULES = {
  sentimentBelow: -0.4,
  sentimentTurns: 2,
  keywords: ["human", "speak to a manager"],
  toolFailures: 3,
  transferTo: "+15550004242",
};

describe("the escalation setting", () => {
  it("is off by default; an admin sets rules and clears them", async () => {
    expect(await escalationNow()).toBeNull();
    const set = await patch({ escalation: RULES });
    expect(set.status).toBe(200);
    expect(((await set.json()) as { escalation: unknown }).escalation).toEqual(RULES);
    expect(await escalationNow()).toEqual(RULES);
    expect((await patch({ escalation: { keywords: ["manager"] } })).status).toBe(200);
    expect(await escalationNow()).toEqual({ keywords: ["manager"] });
    expect((await patch({ escalation: null })).status).toBe(200);
    expect(await escalationNow()).toBeNull();
  });

  it("refuses rules it cannot apply with 422 invalid_escalation, naming the problem, and keeps the rules as they were", async () => {
    expect((await patch({ escalation: RULES })).status).toBe(200);
    const refused: Array<[unknown, string]> = [
      [{ sentimentBelow: -1.5 }, "escalation.sentimentBelow"],
      [{ sentimentBelow: -0.2, sentimentTurns: 0 }, "escalation.sentimentTurns"],
      [{ sentimentTurns: 2, keywords: ["human"] }, "escalation.sentimentTurns"],
      [{ keywords: ["hu(man|)"] }, "escalation.keywords.0"],
      [{ keywords: ["x".repeat(41)] }, "escalation.keywords.0"],
      [{ keywords: Array.from({ length: 51 }, (_, i) => `word${i}`) }, "escalation.keywords"],
      [{ keywords: [] }, "escalation.keywords"],
      [{ toolFailures: 1.5 }, "escalation.toolFailures"],
      [{ keywords: ["human"], transferTo: "5550004242" }, "escalation.transferTo"],
      [{ transferTo: "+15550004242" }, "escalation"],
      [{ keywords: ["human"], escalateTo: "+15550004242" }, "escalation"],
      ["human", "escalation"],
    ];
    for (const [escalation, path] of refused) {
      const response = await patch({ escalation });
      expect(response.status, JSON.stringify(escalation)).toBe(422);
      const body = (await response.json()) as { error: { code: string; details: Array<{ path: string; message: string }> } };
      expect(body.error.code).toBe("invalid_escalation");
      expect(body.error.details.map((detail) => detail.path)).toContain(path);
    }
    expect(await escalationNow()).toEqual(RULES);
  });

  it("a malformed field beside it is still 400 validation_failed, and nothing changes", async () => {
    expect((await patch({ escalation: RULES })).status).toBe(200);
    const response = await patch({ escalation: { keywords: ["manager"] }, maxConcurrentSessions: -1 });
    expect(response.status).toBe(400);
    expect((await errorOf(response)).code).toBe("validation_failed");
    expect(await escalationNow()).toEqual(RULES);
  });
});
