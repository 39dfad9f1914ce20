import { describe, expect, it } from "vitest";
import { eventually } from "../support/carriers.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { onlyConnection, putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";

/**
 * Web sessions nobody joins: the provider session is dialled when the API creates the session, and billed while it
 * is open, so a session with no caller within WEB_SESSION_JOIN_TIMEOUT_SECONDS (2 s in this project) ends by itself.
 */
async function createWebSession(token: string, key: string): Promise<string> {
  const response = await api("/api/v1/sessions", {
    method: "POST",
    token,
    body: { provider: "openai" },
    headers: { "X-Correlation-ID": key },
  });
  expect(response.status).toBe(201);
  return ((await response.json()) as { id: string }).id;
}

const statusOf = async (id: string, token: string) =>
  ((await (await api(`/api/v1/sessions/${id}`, { token })).json()) as { status: string; endedAt: string | null }).status;

describe("a web session nobody joins", () => {
  it("ends after the join timeout, and its provider socket closes", async () => {
    const { accessToken } = await userWithToken(await createTenant(), "agent");
    const key = uniqueKey("web-no-caller");
    await putScenario(key, { replies: ["Hello?"] });
    const id = await createWebSession(accessToken, key);
    // Dialled at once, while nobody has joined.
    await eventually(async () => (await simulatorConnections(key)).length === 1);
    expect((await onlyConnection(key)).close).toBeNull();
    expect(await statusOf(id, accessToken)).toBe("active");
    await eventually(async () => (await statusOf(id, accessToken)) === "ended", 500);
    await eventually(async () => (await onlyConnection(key)).close !== null);
  });
});
