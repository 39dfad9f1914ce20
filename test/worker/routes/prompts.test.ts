import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TOOL_NAMES } from "../../../workers/shared/db/prompts.ts";
import { tenantWithNumbers } from "../support/calls.ts";
import {
  d1Count,
  eventually,
  parseStreamTwiml,
  postTwilio,
  randomCallSid,
  randomE164,
  simRequests,
  twilioCallParams,
} from "../support/carriers.ts";
import { api, createTenant, errorOf, userWithToken } from "../support/identity.ts";
import { openStream, twilioCallWith } from "../support/media-caller.ts";
import { forgetProviderHealth } from "../support/provider-health.ts";
import { putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";

/**
 * Versioned prompts (workers/routes/prompts.ts): versions are appended, a rollback moves the current pointer, and a
 * session takes the current version when it starts and keeps it. The live tests run real calls through the carrier
 * and provider simulators, which record the instructions each provider connection was configured with.
 */

interface PromptView {
  id: string;
  name: string;
  currentVersion: number;
  current: { version: number; instructions: string; voice: string | null; tools: string[] | null };
}

let tenantId: string;
let admin: string;
let agent: string;
let otherAdmin: string;
beforeAll(async () => {
  tenantId = await createTenant();
  admin = (await userWithToken(tenantId, "admin")).accessToken;
  agent = (await userWithToken(tenantId, "agent")).accessToken;
  otherAdmin = (await userWithToken(await createTenant(), "admin")).accessToken;
});
/** A provider refused in one test would be "offline" in the fleet registry for the next: each starts from none. */
beforeEach(forgetProviderHealth);

async function createPrompt(token: string, body: Record<string, unknown>): Promise<PromptView> {
  const response = await api("/api/v1/prompts", { method: "POST", token, body });
  expect(response.status).toBe(201);
  return (await response.json()) as PromptView;
}

async function addVersion(token: string, id: string, body: Record<string, unknown>): Promise<PromptView> {
  const response = await api(`/api/v1/prompts/${id}/versions`, { method: "POST", token, body });
  expect(response.status).toBe(201);
  return (await response.json()) as PromptView;
}

const rollback = (token: string, id: string, version: number) =>
  api(`/api/v1/prompts/${id}/rollback`, { method: "POST", token, body: { version } });

describe("versions and rollback", () => {
  it("a new version becomes current; a rollback makes an earlier one current again; every version is kept", async () => {
    const created = await createPrompt(admin, { name: "Front desk", instructions: "Version one.", tools: ["end_call"] });
    expect(created).toMatchObject({ currentVersion: 1, current: { version: 1, instructions: "Version one.", tools: ["end_call"] } });

    const second = await addVersion(admin, created.id, { instructions: "Version two.", voice: "cedar" });
    expect(second).toMatchObject({ currentVersion: 2, current: { version: 2, instructions: "Version two.", voice: "cedar", tools: null } });
    const third = await addVersion(admin, created.id, { instructions: "Version three." });
    expect(third.currentVersion).toBe(3);

    const rolled = await rollback(admin, created.id, 1);
    expect(rolled.status).toBe(200);
    expect(await rolled.json()).toMatchObject({ currentVersion: 1, current: { version: 1, instructions: "Version one." } });

    // After a rollback a new version still takes the next number: versions are never renumbered or replaced.
    expect((await addVersion(admin, created.id, { instructions: "Version four." })).currentVersion).toBe(4);

    const detail = await api(`/api/v1/prompts/${created.id}`, { token: agent });
    expect(detail.status).toBe(200);
    const body = (await detail.json()) as PromptView & { versions: Array<{ version: number; instructions: string }> };
    expect(body.versions.map((v) => [v.version, v.instructions])).toEqual([
      [4, "Version four."],
      [3, "Version three."],
      [2, "Version two."],
      [1, "Version one."],
    ]);
    const list = (await (await api("/api/v1/prompts", { token: agent })).json()) as { items: PromptView[] };
    expect(list.items.find((item) => item.id === created.id)?.currentVersion).toBe(4);

    const audited = await d1Count(
      "SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND target_id = ? AND action IN ('prompt.create', 'prompt.version', 'prompt.rollback')",
      tenantId,
      created.id,
    );
    expect(audited).toBe(5);
  });

  it("a rollback to a version that does not exist is 404 and moves nothing", async () => {
    const created = await createPrompt(admin, { name: "Rollback", instructions: "Only version." });
    const response = await rollback(admin, created.id, 2);
    expect(response.status).toBe(404);
    expect((await errorOf(response)).code).toBe("not_found");
    const detail = (await (await api(`/api/v1/prompts/${created.id}`, { token: admin })).json()) as PromptView;
    expect(detail.currentVersion).toBe(1);
  });

  it("tools must be names of the agent's tools, each once", async () => {
    for (const tools of [
      ["end_call", "open_the_vault"],
      ["end_call", "end_call"],
    ]) {
      const response = await api("/api/v1/prompts", { method: "POST", token: admin, body: { name: "Tools", instructions: "Hi.", tools } });
      expect(response.status).toBe(400);
    }
  });

  it("another tenant's prompt is not found, and cannot be versioned or rolled back", async () => {
    const created = await createPrompt(admin, { name: "Mine", instructions: "Mine." });
    expect((await api(`/api/v1/prompts/${created.id}`, { token: otherAdmin })).status).toBe(404);
    const version = await api(`/api/v1/prompts/${created.id}/versions`, {
      method: "POST",
      token: otherAdmin,
      body: { instructions: "Theirs." },
    });
    expect(version.status).toBe(404);
    expect((await rollback(otherAdmin, created.id, 1)).status).toBe(404);
    const list = (await (await api("/api/v1/prompts", { token: otherAdmin })).json()) as { items: PromptView[] };
    expect(list.items.map((item) => item.id)).not.toContain(created.id);
  });
});

describe("what points at a prompt", () => {
  it("a number naming an unknown prompt, or another tenant's, is refused with 422 and not attached", async () => {
    const theirs = await createPrompt(otherAdmin, { name: "Theirs", instructions: "Theirs." });
    for (const promptId of [crypto.randomUUID(), theirs.id]) {
      const e164 = randomE164();
      const response = await api("/api/v1/phone-numbers", { method: "POST", token: admin, body: { e164, carrier: "twilio", promptId } });
      expect(response.status).toBe(422);
      expect((await errorOf(response)).code).toBe("unknown_prompt");
      expect(await d1Count("SELECT COUNT(*) AS n FROM phone_numbers WHERE e164 = ?", e164)).toBe(0);
    }
  });

  it("PATCH points a number at a prompt (422 for another tenant's) and clears it with null", async () => {
    const mine = await createPrompt(admin, { name: "Patch", instructions: "Patched." });
    const theirs = await createPrompt(otherAdmin, { name: "Theirs", instructions: "Theirs." });
    const created = await api("/api/v1/phone-numbers", { method: "POST", token: admin, body: { e164: randomE164(), carrier: "twilio" } });
    const { id } = (await created.json()) as { id: string };
    const patch = (body: Record<string, unknown>, token = admin) => api(`/api/v1/phone-numbers/${id}`, { method: "PATCH", token, body });

    expect((await patch({ promptId: theirs.id })).status).toBe(422);
    const pointed = await patch({ promptId: mine.id });
    expect(pointed.status).toBe(200);
    expect(await pointed.json()).toMatchObject({ id, promptId: mine.id });
    expect(await (await patch({ promptId: null })).json()).toMatchObject({ promptId: null });
    expect((await patch({ promptId: mine.id }, otherAdmin)).status).toBe(404);
  });

  it("a web session runs the prompt's current version (its voice and only its tools) and records it", async () => {
    const prompt = await createPrompt(admin, { name: "Web", instructions: "Web version one." });
    await addVersion(admin, prompt.id, { instructions: "Web version two.", voice: "marin", tools: ["find_customer", "end_call"] });
    const key = uniqueKey("prompt-web");
    await putScenario(key, { replies: ["Hello."] });
    const response = await api("/api/v1/sessions", {
      method: "POST",
      token: agent,
      body: { provider: "openai", promptId: prompt.id, instructions: "Ignored: the prompt wins." },
      headers: { "X-Correlation-ID": key },
    });
    expect(response.status).toBe(201);
    const session = (await response.json()) as { id: string; instructions: string; prompt: { id: string; version: number } };
    expect(session).toMatchObject({ instructions: "Web version two.", prompt: { id: prompt.id, version: 2 } });
    const detail = await (await api(`/api/v1/sessions/${session.id}`, { token: agent })).json();
    expect(detail).toMatchObject({ prompt: { id: prompt.id, version: 2 } });
    const setup = await setupOf(key);
    expect(instructionsOf(setup)).toContain("Web version two.");
    expect(toolNamesOf(setup).sort()).toEqual(["end_call", "find_customer"]);
    expect(setup).toMatchObject({ session: { audio: { output: { voice: "marin" } } } });
    await api(`/api/v1/sessions/${session.id}/end`, { method: "POST", token: agent });
  });

  it("a web session naming another tenant's prompt is refused with 422", async () => {
    const theirs = await createPrompt(otherAdmin, { name: "Theirs", instructions: "Theirs." });
    const response = await api("/api/v1/sessions", { method: "POST", token: agent, body: { promptId: theirs.id } });
    expect(response.status).toBe(422);
  });
});

describe("an outbound call's prompt", () => {
  it("runs the prompt the request names and records its version; an unknown one is 422 and dials nothing", async () => {
    const { token } = await tenantWithNumbers([{ carrier: "twilio", provider: "local", instructions: "The number's own." }]);
    const prompt = await createPrompt(token, { name: "Outbound", instructions: "Outbound version one." });
    const to = randomE164();
    const placed = await api("/api/v1/calls", { method: "POST", token, body: { to, carrier: "twilio", promptId: prompt.id } });
    expect(placed.status).toBe(201);
    const { sessionId } = (await placed.json()) as { sessionId: string };
    expect(await sessionPrompt(token, sessionId)).toEqual({ id: prompt.id, version: 1 });
    const detail = (await (await api(`/api/v1/sessions/${sessionId}`, { token })).json()) as { instructions: string };
    expect(detail.instructions).toBe("Outbound version one.");

    const unknown = randomE164();
    const refused = await api("/api/v1/calls", {
      method: "POST",
      token,
      body: { to: unknown, carrier: "twilio", promptId: crypto.randomUUID() },
    });
    expect(refused.status).toBe(422);
    expect(await simRequests({ carrier: "twilio", to: unknown })).toEqual([]);
  });
});

/** The instructions in an OpenAI `session.update` as the provider simulator recorded it. */
function instructionsOf(setup: unknown): string {
  return (setup as { session?: { instructions?: string } }).session?.instructions ?? "";
}
function toolNamesOf(setup: unknown): string[] {
  return ((setup as { session?: { tools?: Array<{ name: string }> } }).session?.tools ?? []).map((t) => t.name);
}

async function setupOf(key: string): Promise<unknown> {
  const [connection] = await eventually(async () => {
    const connections = await simulatorConnections(key);
    return connections[0]?.setup ? connections : null;
  });
  return connection?.setup;
}

async function sessionPrompt(token: string, sessionId: string): Promise<{ id: string; version: number }> {
  return eventually(async () => {
    const response = await api(`/api/v1/sessions/${sessionId}`, { token });
    if (response.status !== 200) return null;
    return ((await response.json()) as { prompt: { id: string; version: number } | null }).prompt;
  });
}

describe("a live call through a number's prompt", () => {
  it("a running call keeps the version it started with; a call after the rollback gets the version rolled back to", async () => {
    const firstKey = uniqueKey("prompt-live-first");
    await putScenario(firstKey, { replies: ["Hello from the first call."] });
    // The number starts out with plain instructions; pointing it at a prompt must reach the very next call.
    const first = await twilioCallWith("openai", uniqueKey("prompt-live-warmup"), "Plain instructions.");
    const numbers = (await (await api("/api/v1/phone-numbers", { token: first.token })).json()) as { items: Array<{ id: string }> };
    const prompt = await createPrompt(first.token, { name: "Line", instructions: "Line version one." });
    await addVersion(first.token, prompt.id, { instructions: "Line version two." });
    const numberId = numbers.items[0]!.id;
    expect(
      (await api(`/api/v1/phone-numbers/${numberId}`, { method: "PATCH", token: first.token, body: { promptId: prompt.id } })).status,
    ).toBe(200);

    const running = await twilioCallAgain(first.number, firstKey);
    const runningStream = await openStream(running);
    await runningStream.silence(200);
    const runningSetup = await setupOf(firstKey);
    expect(instructionsOf(runningSetup)).toContain("Line version two.");
    // Without an allow-list the agent has every tool the registry knows, which are exactly the names prompts accept.
    expect(toolNamesOf(runningSetup).sort()).toEqual([...TOOL_NAMES].sort());
    expect(await sessionPrompt(first.token, running.sessionId)).toEqual({ id: prompt.id, version: 2 });

    expect((await rollback(first.token, prompt.id, 1)).status).toBe(200);

    const secondKey = uniqueKey("prompt-live-second");
    await putScenario(secondKey, { replies: ["Hello from the second call."] });
    const next = await twilioCallAgain(first.number, secondKey);
    expect(instructionsOf(await setupOf(secondKey))).toContain("Line version one.");
    expect(await sessionPrompt(first.token, next.sessionId)).toEqual({ id: prompt.id, version: 1 });

    // The running call was not reconfigured: one connection, configured once, and its session still says version 2.
    await runningStream.silence(200);
    const [connection, ...more] = await simulatorConnections(firstKey);
    expect(more).toEqual([]);
    expect(connection?.configUpdates.entries.map(instructionsOf).filter((text) => text.includes("Line version one."))).toEqual([]);
    expect(await sessionPrompt(first.token, running.sessionId)).toEqual({ id: prompt.id, version: 2 });
  });
});

/** Another inbound call to a number already attached (twilioCallWith attaches a new one each time). */
async function twilioCallAgain(number: string, key: string) {
  const callSid = randomCallSid();
  const response = await postTwilio("/telephony/twilio/voice", twilioCallParams(callSid, number, "ringing"), {
    headers: { "X-Correlation-ID": key },
  });
  expect(response.status).toBe(200);
  const stream = parseStreamTwiml(await response.text());
  return { callSid, sessionId: stream.url.split("/").at(-1)!, streamUrl: stream.url, mediaToken: stream.token };
}
