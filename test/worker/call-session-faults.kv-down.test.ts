import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { CallSession } from "../../durable-objects/call-session.ts";
import { earlyInLimiterWindow } from "../support/limiter-window.ts";
import { converse, d1Back, d1Down, dtmfEventsInD1, expectCompleteInD1, hangUp, stubOf } from "./support/call-faults.ts";
import { listCalls, tenantWithNumbers } from "./support/calls.ts";
import { eventually } from "./support/carriers.ts";
import { api, createTenant, createUser, randomIp } from "./support/identity.ts";
import { openStream, twilioCallWith, twilioOutboundCallWith } from "./support/media-caller.ts";
import { uniqueKey } from "./support/provider-simulator.ts";

/**
 * The fault suite's "KV unavailable" case. In the worker-kv-down project the CACHE binding is a KV namespace whose
 * backend cannot be reached (vitest.config.ts), so every KV operation of the real Worker and of the call's object
 * fails the way an unreachable KV does. KV is a cache: sign-in, API reads, numbers and whole calls go on without
 * it, and each call ends as in the other fault tests — record, history and transcript complete in D1, nothing twice.
 */

const loginAttempt = (email: string, password: string) =>
  api("/api/v1/auth/login", { method: "POST", body: { email, password }, ip: randomIp() });

describe("KV unavailable for the whole run", () => {
  it("is really down: every KV operation fails, and health says so", async () => {
    await expect(env.CACHE.get("any")).rejects.toThrow();
    await expect(env.CACHE.put("any", "1")).rejects.toThrow();
    await expect(env.CACHE.delete("any")).rejects.toThrow();
    await expect(env.CACHE.list()).rejects.toThrow();
    const health = await api("/health");
    expect(health.status).toBe(503);
  });

  it("sign-in, an API read and a number's attach and release work", async () => {
    const tenantId = await createTenant();
    const user = await createUser(tenantId, "admin");
    const signedIn = await loginAttempt(user.email, user.password);
    expect(signedIn.status).toBe(200);
    const { accessToken } = (await signedIn.json()) as { accessToken: string };
    expect((await listCalls(accessToken)).items).toEqual([]);
    const { numbers, token } = await tenantWithNumbers([{ carrier: "twilio" }]);
    const listed = (await (await api("/api/v1/phone-numbers", { token })).json()) as { items: Array<{ id: string; e164: string }> };
    const number = listed.items.find((item) => item.e164 === numbers[0]);
    expect((await api(`/api/v1/phone-numbers/${number!.id}`, { method: "DELETE", token })).status).toBe(204);
  });

  it("an account past its failure limit stays locked, though the lock itself cannot be stored or read", async () => {
    const tenantId = await createTenant();
    const user = await createUser(tenantId, "agent");
    // The budget is counted in clock-aligned windows (limiter-window.ts): spent across a window's end, it is whole again.
    await earlyInLimiterWindow(10_000);
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await loginAttempt(user.email, "wrong")).status);
    expect(statuses.slice(0, 10).every((status) => status === 401)).toBe(true);
    expect(statuses[10]).toBe(429);
    expect((await loginAttempt(user.email, user.password)).status).toBe(429);
  });

  it("a call answered, conversed and hung up: its record, history and transcript are complete in D1", async () => {
    const call = await twilioCallWith("local", uniqueKey("kv-down"), "Greet the caller. Then listen.");
    const caller = await openStream(call);
    await converse(caller);
    await converse(caller, "invoice");
    await hangUp(call);
    await expectCompleteInD1(call.token, call.sessionId);
  });

  it("the call index failing to reach KV is no D1 failure: a backlog drains in one wake-up once D1 is back", async () => {
    // Outbound: its session id is not derived from its CallSid, so its object writes the KV route (and fails to).
    const call = await twilioOutboundCallWith("local", uniqueKey("kv-down-backlog"), "Listen.");
    const caller = await openStream(call);
    await caller.silence(200);
    // A backlog of a few batches builds while D1 is down (every key press is a line of the call's history).
    const presses = 200;
    await d1Down();
    try {
      for (let i = 0; i < presses; i++) caller.dtmf(String(i % 10));
      await caller.silence(200);
      // Kept, and a sync of them tried and failed (the presses go to D1 together a moment later): its retry is due.
      await eventually(async () => {
        const { sync, retry } = await runInDurableObject(stubOf(call.sessionId), async (instance: CallSession, state) => ({
          sync: await instance.pendingSync(),
          retry: await state.storage.getAlarm(),
        }));
        return sync.events >= presses && retry !== null;
      }, 250);
    } finally {
      await d1Back();
    }
    // One wake-up sends up to DRAIN_BATCHES_PER_WAKE batches: the whole backlog, unless a KV failure stops it.
    await runDurableObjectAlarm(stubOf(call.sessionId));
    const afterOneWake = await runInDurableObject(stubOf(call.sessionId), (instance: CallSession) => instance.pendingSync());
    expect(afterOneWake.events).toBe(0);
    await hangUp(call);
    await expectCompleteInD1(call.token, call.sessionId, { transcript: false });
    expect(await dtmfEventsInD1(call.sessionId)).toBe(presses);
  });
});
