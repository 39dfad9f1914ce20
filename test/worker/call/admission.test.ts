import {
  createExecutionContext,
  createScheduledController,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { TURN_AWAY_DEADLINE_KEY } from "../../../durable-objects/call/turn-away.ts";
import { BUSY_MESSAGE } from "../../../workers/carriers/carrier.ts";
import { deriveSessionId } from "../../../workers/carriers/session-routing.ts";
import worker from "../../../workers/index.ts";
import { tenantScopeFor } from "../../../workers/shared/db/tenant-scope.ts";
import { readVersionedSettings, TENANT_SETTINGS_DEFAULTS } from "../../../workers/shared/tenant-settings.ts";
import { admissionOf, holders, twilioVoice } from "../support/admission.ts";
import {
  type CallDetail,
  callByCarrierId,
  callTraces,
  listCalls,
  passStoredDeadline,
  tenantWithNumbers,
  twilioStatus,
} from "../support/calls.ts";
import {
  eventually,
  postTelnyx,
  randomCallControlId,
  randomCallSid,
  randomE164,
  simRequests,
  telnyxEnvelope,
} from "../support/carriers.ts";
import { api, errorOf } from "../support/identity.ts";

/**
 * Admission control: past a tenant's `maxConcurrentSessions` an inbound call hears the busy message and ends (its
 * record says why), and new outbound calls and web sessions answer 429 `concurrency_limit` with nothing created. The
 * count is exact under a burst, one slot per call however often the carrier retries it, and slots come back when
 * sessions end — by the carrier's word, the API, the reconcile cron, or (a release that was lost) the holder's lease.
 */
async function tenantWithLimit(limit: number, carriers: Array<"twilio" | "telnyx"> = ["twilio"]) {
  const fixture = await tenantWithNumbers(carriers.map((carrier) => ({ carrier })));
  const set = await api("/api/v1/tenant/settings", { method: "PATCH", token: fixture.token, body: { maxConcurrentSessions: limit } });
  expect(set.status).toBe(200);
  return fixture;
}

const refusal = (call: CallDetail) => ({
  status: call.status,
  failureReason: call.failureReason,
  refusedEvent: call.events.some((e) => e.event === "admission.refused" && e.source === "system" && e.toStatus === "failed"),
});

async function startWebSession(token: string) {
  return api("/api/v1/sessions", { method: "POST", token, body: { provider: "local" } });
}

describe("admission control: inbound calls", () => {
  it("a burst of Twilio calls for 3 slots admits exactly 3; the rest hear the busy message and are recorded as refused", async () => {
    const { tenantId, token, numbers } = await tenantWithLimit(3);
    const results = await Promise.all(Array.from({ length: 8 }, () => twilioVoice(numbers[0]!)));
    expect(results.filter((r) => r.verdict === "admitted")).toHaveLength(3);
    const busy = results.filter((r) => r.verdict === "busy");
    expect(busy).toHaveLength(5);
    expect(busy[0]!.twiml).toMatch(/<Say>[^<]+<\/Say><Hangup\/><\/Response>$/);
    expect((await holders(tenantId)).sort()).toEqual(results.flatMap((r) => (r.sessionId ? [r.sessionId] : [])).sort());

    for (const { callSid } of busy) {
      const call = await eventually(async () => {
        const found = await callByCarrierId(token, callSid).catch(() => null);
        return found?.status === "failed" && found;
      });
      expect(refusal(call)).toEqual({ status: "failed", failureReason: "concurrency_limit", refusedEvent: true });
    }
    const { items } = await listCalls(token, "?status=failed&limit=100");
    expect(items.filter((call) => call.failureReason === "concurrency_limit")).toHaveLength(5);
  });

  it("a burst of Telnyx calls for 2 slots: 2 answered with media, the rest answered without, told, then hung up", async () => {
    const { tenantId, token, numbers } = await tenantWithLimit(2, ["telnyx"]);
    const ids = Array.from({ length: 6 }, () => randomCallControlId());
    const initiated = await Promise.all(
      ids.map((id) =>
        postTelnyx(
          telnyxEnvelope("call.initiated", {
            call_control_id: id,
            direction: "incoming",
            from: "+14155550100",
            to: numbers[0],
            state: "parked",
          }),
        ),
      ),
    );
    for (const response of initiated) expect(response.status).toBe(200);
    const answers = await Promise.all(
      ids.map((id) => eventually(async () => (await simRequests({ carrier: "telnyx", callId: id, path: "/actions/answer" }))[0])),
    );
    const withMedia = answers.filter((a) => typeof (a.body as { stream_url?: string }).stream_url === "string");
    expect(withMedia).toHaveLength(2);
    expect(await holders(tenantId)).toHaveLength(2);

    const refusedIds = ids.filter((_, i) => typeof (answers[i]!.body as { stream_url?: string }).stream_url !== "string");
    expect(refusedIds).toHaveLength(4);
    const refusedId = refusedIds[0]!;
    const call = await callByCarrierId(token, refusedId);
    expect(refusal(call)).toEqual({ status: "failed", failureReason: "concurrency_limit", refusedEvent: true });

    // Telnyx echoes the client_state set on the answer; the busy message is spoken once answered, then the call ends.
    const clientState = btoa(JSON.stringify({ s: call.sessionId }));
    await postTelnyx(telnyxEnvelope("call.answered", { call_control_id: refusedId, client_state: clientState }));
    const speak = await eventually(async () => (await simRequests({ carrier: "telnyx", callId: refusedId, path: "/actions/speak" }))[0]);
    expect(speak.body).toMatchObject({ payload: BUSY_MESSAGE, client_state: clientState });
    expect(await simRequests({ carrier: "telnyx", callId: refusedId, path: "/actions/hangup" })).toHaveLength(0);
    await postTelnyx(telnyxEnvelope("call.speak.ended", { call_control_id: refusedId, client_state: clientState }));
    await eventually(async () => (await simRequests({ carrier: "telnyx", callId: refusedId, path: "/actions/hangup" }))[0]);
    expect(await holders(tenantId)).toHaveLength(2);
  });

  it("a turned-away Telnyx call whose later webhooks never come is hung up at its deadline by the object's alarm", async () => {
    const { numbers } = await tenantWithLimit(1, ["telnyx"]);
    const [admittedId, refusedId] = [randomCallControlId(), randomCallControlId()];
    for (const id of [admittedId, refusedId]) {
      const initiated = telnyxEnvelope("call.initiated", {
        call_control_id: id,
        direction: "incoming",
        from: "+14155550100",
        to: numbers[0],
        state: "parked",
      });
      expect((await postTelnyx(initiated)).status).toBe(200);
      await eventually(async () => (await simRequests({ carrier: "telnyx", callId: id, path: "/actions/answer" }))[0]);
    }
    // Neither call.answered nor call.speak.ended arrives. Before the deadline the alarm leaves the call alone…
    const stub = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(await deriveSessionId("telnyx", refusedId)));
    await runDurableObjectAlarm(stub);
    expect(await simRequests({ carrier: "telnyx", callId: refusedId, path: "/actions/hangup" })).toHaveLength(0);
    // …and once it has passed (moved to now, as if the minute went by), hangs the call up.
    await passStoredDeadline(stub, TURN_AWAY_DEADLINE_KEY);
    await runDurableObjectAlarm(stub);
    await eventually(async () => (await simRequests({ carrier: "telnyx", callId: refusedId, path: "/actions/hangup" }))[0]);
    expect(await simRequests({ carrier: "telnyx", callId: admittedId, path: "/actions/hangup" })).toHaveLength(0);
  });

  it("an admitted call starts with the settings its tenant's admission object holds: no D1 read of them before it answers", async () => {
    const { tenantId, numbers, token } = await tenantWithLimit(5);
    const masked = await api("/api/v1/tenant/settings", { method: "PATCH", token, body: { piiRedaction: "mask" } });
    expect(masked.status).toBe(200);
    // D1 changed behind the admission object's back (no push): a call that read D1 would now start unmasked.
    await env.DB.prepare("UPDATE tenant_settings SET settings = json_set(settings, '$.piiRedaction', 'off') WHERE tenant_id = ?")
      .bind(tenantId)
      .run();
    const call = await twilioVoice(numbers[0]!);
    expect(call.verdict).toBe("admitted");
    const stored = await runInDurableObject(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(call.sessionId!)), (_object, state) =>
      state.storage.kv.get<{ piiRedaction: string; maxConcurrentSessions: number }>("tenant_settings"),
    );
    expect(stored).toMatchObject({ piiRedaction: "mask", maxConcurrentSessions: 5 });
    // An admin's change through the API reaches the admission object at once, and the next call takes it.
    const off = await api("/api/v1/tenant/settings", { method: "PATCH", token, body: { piiRedaction: "off", maxConcurrentSessions: 6 } });
    expect(off.status).toBe(200);
    const next = await twilioVoice(numbers[0]!);
    const nextStored = await runInDurableObject(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(next.sessionId!)), (_object, state) =>
      state.storage.kv.get<{ piiRedaction: string; maxConcurrentSessions: number }>("tenant_settings"),
    );
    expect(nextStored).toMatchObject({ piiRedaction: "off", maxConcurrentSessions: 6 });
  });

  it("a carrier's retries of the same call hold one slot, and hear the same answer", async () => {
    const { tenantId, numbers } = await tenantWithLimit(1);
    const callSid = randomCallSid();
    const retries = await Promise.all([1, 2, 3].map(() => twilioVoice(numbers[0]!, callSid)));
    expect(retries.map((r) => r.verdict)).toEqual(["admitted", "admitted", "admitted"]);
    expect(await holders(tenantId)).toEqual([retries[0]!.sessionId]);
    // The admission object takes a session once however often it is asked, even full (a retry racing the first).
    expect(await admissionOf(tenantId).acquire(tenantId, retries[0]!.sessionId!)).toMatchObject({
      admitted: true,
      active: 1,
      settings: { maxConcurrentSessions: 1 },
    });

    const refused = await twilioVoice(numbers[0]!);
    expect(refused.verdict).toBe("busy");
    expect((await twilioVoice(numbers[0]!, callSid)).verdict).toBe("admitted");
    // A retry of a refused call is refused again, even once a slot is free: the decision is the call's record.
    await twilioStatus(callSid, numbers[0]!, "completed", { sequence: 5 });
    await eventually(async () => (await holders(tenantId)).length === 0);
    expect((await twilioVoice(numbers[0]!, refused.callSid)).verdict).toBe("busy");
    expect(await holders(tenantId)).toEqual([]);
  });

  it("a call's slot comes back when its carrier says it ended", async () => {
    const { tenantId, numbers } = await tenantWithLimit(1);
    const first = await twilioVoice(numbers[0]!);
    expect(first.verdict).toBe("admitted");
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("busy");

    const ended = await twilioStatus(first.callSid, numbers[0]!, "completed", { sequence: 5 });
    expect(ended.status).toBe(204);
    await eventually(async () => (await holders(tenantId)).length === 0);
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("admitted");
  });

  it("a call whose end only the reconcile cron learns gives its slot back when the cron settles it", async () => {
    const { tenantId, token, numbers } = await tenantWithLimit(1);
    const lost = await twilioVoice(numbers[0]!);
    expect(lost.verdict).toBe("admitted");
    const call = await eventually(async () => callByCarrierId(token, lost.callSid).catch(() => null));
    // No final webhook ever comes; the call has had no news for two hours (the fake Twilio API does not know it).
    await env.DB.prepare("UPDATE calls SET updated_at = updated_at - 7200000 WHERE id = ?").bind(call.id).run();
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("busy");

    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "*/5 * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect((await callByCarrierId(token, lost.callSid)).status).toBe("failed");
    expect(await holders(tenantId)).toEqual([]);
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("admitted");
  });

  it("a slot whose release was lost is freed by its lease once the tenant is full; live holders keep theirs", async () => {
    const { tenantId, numbers } = await tenantWithLimit(2);
    const live = await twilioVoice(numbers[0]!);
    expect(live.verdict).toBe("admitted");
    // A session that took a slot and ended without telling the admission object (its object knows no such
    // session), long ago; and the live call's last check, long ago too. The slot is taken through the object (it
    // counts its holders), only the times are moved back behind it.
    const lostSession = crypto.randomUUID();
    expect(await admissionOf(tenantId).acquire(tenantId, lostSession)).toMatchObject({ admitted: true, active: 2 });
    await runInDurableObject(admissionOf(tenantId), (_object, state) => {
      const longAgo = Date.now() - 5 * 60_000;
      state.storage.sql.exec("UPDATE holders SET acquired_at = ?, checked_at = ?", longAgo, longAgo);
    });
    expect(await holders(tenantId)).toHaveLength(2);

    const next = await twilioVoice(numbers[0]!);
    expect(next.verdict).toBe("admitted");
    expect((await holders(tenantId)).sort()).toEqual([live.sessionId, next.sessionId].sort());
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("busy");
    // A new instance counts its holders afresh from storage: still full.
    await evictDurableObject(admissionOf(tenantId));
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("busy");
    expect(await admissionOf(tenantId).release(next.sessionId!)).toEqual({ active: 1 });
    expect(await admissionOf(tenantId).release(next.sessionId!)).toEqual({ active: 1 });
  });

  it("the admission object holds the limit it was told; one it was never told it reads from D1", async () => {
    const { tenantId, numbers } = await tenantWithLimit(1);
    // An admin's change reached the admission object: a D1 row changed behind its back (a push that was lost) does not
    // count until it reads D1 again…
    await env.DB.prepare("UPDATE tenant_settings SET settings = ? WHERE tenant_id = ?")
      .bind(JSON.stringify({ maxConcurrentSessions: 2 }), tenantId)
      .run();
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("admitted");
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("busy");
    // …which it does when its copy is no longer fresh (here: a new instance, after eviction).
    await evictDurableObject(admissionOf(tenantId));
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("admitted");
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("busy");
  });

  it("keeps the newest settings it is given: a change pushed late, or a read begun before a change, never undoes it", async () => {
    const { tenantId, numbers, token } = await tenantWithLimit(1);
    const { version } = await readVersionedSettings(tenantScopeFor(env, tenantId));
    const limit = (maxConcurrentSessions: number) => ({ ...TENANT_SETTINGS_DEFAULTS, maxConcurrentSessions });
    // Two admins' changes at once, their pushes crossing: the later version arrives first.
    await admissionOf(tenantId).setSettings({ settings: limit(2), version: version + 2 });
    await admissionOf(tenantId).setSettings({ settings: limit(1), version: version + 1 });
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("admitted");
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("admitted");
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("busy");
    // A PATCH moves the version forward whatever it was, and its push holds from the next call.
    const set = await api("/api/v1/tenant/settings", { method: "PATCH", token, body: { maxConcurrentSessions: 3 } });
    expect(set.status).toBe(200);
    expect((await readVersionedSettings(tenantScopeFor(env, tenantId))).version).toBeGreaterThan(version);
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("admitted");
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("busy");
  });

  it("lets a caller through when the limit cannot be checked, and says so on the call's record", async () => {
    const { tenantId, token, numbers } = await tenantWithLimit(1);
    // A settings row that no longer parses (edited by hand): the limit cannot be known.
    await env.DB.prepare("UPDATE tenant_settings SET settings = ? WHERE tenant_id = ?")
      .bind(JSON.stringify({ maxConcurrentSessions: "lots" }), tenantId)
      .run();
    // The admission object was told the limit when it was set; evicted, it must read it again, and cannot.
    await evictDurableObject(admissionOf(tenantId));
    const calls = [await twilioVoice(numbers[0]!), await twilioVoice(numbers[0]!)];
    expect(calls.map((c) => c.verdict)).toEqual(["admitted", "admitted"]);
    const call = await eventually(async () => callByCarrierId(token, calls[0]!.callSid).catch(() => null));
    expect(call.events.map((e) => e.event)).toContain("admission.unchecked");

    // No one waits on an API request: it is refused instead, and starts nothing.
    const before = await callTraces();
    const web = await startWebSession(token);
    expect(web.status).toBe(503);
    expect((await errorOf(web)).code).toBe("admission_unavailable");
    const outbound = await api("/api/v1/calls", { method: "POST", token, body: { to: randomE164() } });
    expect(outbound.status).toBe(503);
    expect(await callTraces()).toEqual(before);
  });
});

describe("admission control: web sessions and outbound calls", () => {
  it("answer 429 concurrency_limit past the limit, create and dial nothing, and share the limit with phone calls", async () => {
    const { tenantId, token, numbers } = await tenantWithLimit(2);
    const web = await startWebSession(token);
    expect(web.status).toBe(201);
    expect((await twilioVoice(numbers[0]!)).verdict).toBe("admitted");

    const before = await callTraces();
    const refusedWeb = await startWebSession(token);
    expect(refusedWeb.status).toBe(429);
    expect((await errorOf(refusedWeb)).code).toBe("concurrency_limit");
    const to = randomE164();
    const refusedCall = await api("/api/v1/calls", { method: "POST", token, body: { to } });
    expect(refusedCall.status).toBe(429);
    expect((await errorOf(refusedCall)).code).toBe("concurrency_limit");
    expect(await callTraces()).toEqual(before);
    expect(await simRequests({ carrier: "twilio", to })).toEqual([]);
    expect(await holders(tenantId)).toHaveLength(2);
  });

  it("a web session's slot comes back when it is ended", async () => {
    const { tenantId, token } = await tenantWithLimit(1);
    const first = await startWebSession(token);
    expect(first.status).toBe(201);
    const { id } = (await first.json()) as { id: string };
    expect((await startWebSession(token)).status).toBe(429);

    const ended = await api(`/api/v1/sessions/${id}/end`, { method: "POST", token });
    expect(ended.status).toBe(200);
    expect(await holders(tenantId)).toEqual([]);
    const next = await startWebSession(token);
    expect(next.status).toBe(201);
    const { id: nextId } = (await next.json()) as { id: string };
    expect(await holders(tenantId)).toEqual([nextId]);
  });

  it("an outbound call's slot comes back when it is hung up", async () => {
    const { tenantId, token } = await tenantWithLimit(1);
    const placed = await api("/api/v1/calls", { method: "POST", token, body: { to: randomE164() } });
    expect(placed.status).toBe(201);
    const { id, sessionId } = (await placed.json()) as { id: string; sessionId: string };
    expect(await holders(tenantId)).toEqual([sessionId]);
    expect((await api("/api/v1/calls", { method: "POST", token, body: { to: randomE164() } })).status).toBe(429);

    expect((await api(`/api/v1/calls/${id}/hangup`, { method: "POST", token })).status).toBe(200);
    await eventually(async () => (await holders(tenantId)).length === 0);
    expect((await api("/api/v1/calls", { method: "POST", token, body: { to: randomE164() } })).status).toBe(201);
  });
});
