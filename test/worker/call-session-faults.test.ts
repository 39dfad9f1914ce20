import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { OUTBOX_BOUNDS } from "../../durable-objects/call/outbox-backlog.ts";
import type { CallSession } from "../../durable-objects/call-session.ts";
import { converse, d1Back, d1Down, dropStream, dtmfEventsInD1, expectCompleteInD1, hangUp, stubOf } from "./support/call-faults.ts";
import { openTwilioCall } from "./support/calls.ts";
import { eventually } from "./support/carriers.ts";
import { openStream, transcriptOf, twilioCallWith } from "./support/media-caller.ts";
import { forgetProviderHealth } from "./support/provider-health.ts";
import { putScenario, simulatorConnections, uniqueKey } from "./support/provider-simulator.ts";

/**
 * The fault suite: a call through the real Worker and its object while the things under it fail — D1 for part of the
 * call and for all of it, a provider that accepts and then stalls, the carrier's stream dropping and coming back, the
 * object evicted mid-call. Whatever failed, each test ends the same way: once D1 is back, the call's record, its
 * history and its transcript are complete in D1, in order, with nothing written twice.
 */

/** The registry of provider health is shared by the file: a provider stalled in one test is not offline in the next. */
beforeEach(forgetProviderHealth);

describe("D1 unavailable", () => {
  it("during a call: the call goes on, and once D1 is back its record, history and transcript are complete", async () => {
    const call = await twilioCallWith("local", uniqueKey("d1-mid"), "Greet the caller. Then listen.");
    const caller = await openStream(call);
    await converse(caller);
    await d1Down();
    try {
      await converse(caller, "invoice");
      await hangUp(call);
    } finally {
      await d1Back();
    }
    await expectCompleteInD1(call.token, call.sessionId);
  });

  it("for the call's whole length, from its first webhook to its last", async () => {
    // The number's route is in KV already (an earlier call looked it up), as it is for any number that takes calls.
    const earlier = await twilioCallWith("local", uniqueKey("d1-warm"), "Greet the caller. Then listen.");
    await d1Down();
    let call: Awaited<ReturnType<typeof twilioCallWith>>;
    try {
      call = { ...earlier, ...(await openTwilioCall(earlier.number)) };
      const caller = await openStream(call);
      await converse(caller);
      await converse(caller, "payment");
      await hangUp(call);
    } finally {
      await d1Back();
    }
    await expectCompleteInD1(call.token, call.sessionId);
  });
});

describe("a backlog past its bound while D1 is down", () => {
  it("is counted and kept whole in the object, said so, and drained to D1 in steps once D1 is back", async () => {
    const call = await twilioCallWith("local", uniqueKey("d1-backlog"), "Listen.");
    const caller = await openStream(call);
    await caller.silence(200);
    await d1Down();
    const presses = OUTBOX_BOUNDS.events + 20;
    try {
      // Every key press is a line of the call's history: more of them than the outbox's bound.
      for (let i = 0; i < presses; i++) caller.dtmf(String(i % 10));
      await caller.silence(200);
      const pending = await eventually(async () => {
        const sync = await runInDurableObject(stubOf(call.sessionId), (instance: CallSession) => instance.pendingSync());
        return sync.events > OUTBOX_BOUNDS.events && sync;
      });
      expect(pending.overBound).toEqual(["events"]);
      caller.stop();
      await hangUp(call);
      // The call is torn down (its stream closed, its end's drains begun) once the stream's `stop` is read.
      await caller.until(() => caller.closeCode !== null);
    } finally {
      await d1Back();
    }
    // One wake-up sends at most DRAIN_BATCHES_PER_WAKE batches of 50, not the whole backlog.
    await runDurableObjectAlarm(stubOf(call.sessionId));
    const afterOneWake = await runInDurableObject(stubOf(call.sessionId), (instance: CallSession) => instance.pendingSync());
    expect(afterOneWake.events).toBeGreaterThan(0);
    expect(afterOneWake.overBound).toEqual([]);
    await expectCompleteInD1(call.token, call.sessionId, { transcript: false });
    expect(await dtmfEventsInD1(call.sessionId)).toBe(presses);
  });
});

describe("a provider that accepts, then stalls", () => {
  it("the object reconnects, the call goes on, and the record is complete with no line twice", async () => {
    const key = uniqueKey("fault-stall");
    // session.created and session.updated, then silence: the session is up but never answers.
    await putScenario(key, { stallAfterMessages: 2, replies: ["Sorry for the wait."], callerTranscripts: ["Are you there?"] });
    const call = await twilioCallWith("openai", key);
    await eventually(async () => (await simulatorConnections(key)).length === 1);
    await putScenario(key, { replies: ["Sorry for the wait."], callerTranscripts: ["Are you there?"] });
    const caller = await openStream(call);
    await caller.silence(200);
    caller.dtmf("1");
    await eventually(async () => (await simulatorConnections(key)).length === 2, 250);
    await converse(caller);
    // The caller listens to the end of the answer (its text arrives after its audio) before hanging up.
    await transcriptOf(call.token, call.sessionId, (lines) => lines.some((line) => line.role === "agent"));
    await hangUp(call);
    await expectCompleteInD1(call.token, call.sessionId);
  });
});

describe("the carrier's stream drops and comes back", () => {
  it("the reconnected stream carries the call on and the record is complete", async () => {
    const call = await twilioCallWith("local", uniqueKey("fault-drop"), "Greet the caller. Then listen.");
    const first = await openStream(call);
    await converse(first);
    await dropStream(first);
    const second = await openStream(call);
    await converse(second, "invoice");
    await hangUp(call);
    await expectCompleteInD1(call.token, call.sessionId);
  });
});

describe("the call's object evicted mid-call", () => {
  it("the fresh instance carries the call on from its storage and the record is complete", async () => {
    const call = await twilioCallWith("local", uniqueKey("fault-evict"), "Greet the caller. Then listen.");
    const first = await openStream(call);
    await converse(first);
    await dropStream(first);
    await evictDurableObject(stubOf(call.sessionId));
    const second = await openStream(call);
    await converse(second, "payment");
    await hangUp(call);
    await expectCompleteInD1(call.token, call.sessionId);
  });
});
