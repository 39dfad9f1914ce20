import { beforeAll, describe, expect, it } from "vitest";
import {
  appliedMoves,
  type CallEventView,
  type CallView,
  callByCarrierId,
  callDetail,
  listCalls,
  openTwilioCall,
  tenantWithNumbers,
  twilioStatus,
} from "../support/calls.ts";
import { eventually, postTelnyx, randomCallControlId, randomE164, telnyxEnvelope } from "../support/carriers.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { openStream, type TwilioMediaCaller, twilioCallWith } from "../support/media-caller.ts";
import { putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";

/**
 * A call's lifecycle as carriers really deliver it: late, out of order, twice, all at once. Everything goes through
 * the real Worker and the call's object, and is read back through the public calls API.
 */
let token: string;
let number: string;

beforeAll(async () => {
  const fixture = await tenantWithNumbers([{ carrier: "twilio" }]);
  token = fixture.token;
  number = fixture.numbers[0]!;
});

const eventsNamed = (events: CallEventView[], name: string) => events.filter((e) => e.event === name);

describe("out-of-order status callbacks", () => {
  it("completed before in-progress: the call completes, the late in-progress is recorded as ignored", async () => {
    const call = await openTwilioCall(number);
    expect((await twilioStatus(call.callSid, number, "completed", { sequence: 3 })).status).toBe(204);
    expect((await twilioStatus(call.callSid, number, "in-progress", { sequence: 2 })).status).toBe(204);
    const detail = await callByCarrierId(token, call.callSid);
    expect(detail.status).toBe("completed");
    expect(appliedMoves(detail.events)).toEqual(["initiated", "ringing", "completed"]);
    expect(eventsNamed(detail.events, "twilio.in-progress")).toMatchObject([
      { outcome: "ignored", carrierSequence: 2, detail: "out_of_order" },
    ]);
  });

  it("a late ringing after in-progress is ignored, with or without a SequenceNumber", async () => {
    const call = await openTwilioCall(number, "queued");
    expect((await twilioStatus(call.callSid, number, "in-progress", { sequence: 2 })).status).toBe(204);
    expect((await twilioStatus(call.callSid, number, "ringing", { sequence: 1 })).status).toBe(204);
    // No sequence to compare: the state machine itself refuses to move a call back.
    expect((await twilioStatus(call.callSid, number, "ringing", { token: `tok-${crypto.randomUUID()}` })).status).toBe(204);
    const detail = await callByCarrierId(token, call.callSid);
    expect(detail.status).toBe("in_progress");
    expect(detail.answeredAt).not.toBeNull();
    expect(eventsNamed(detail.events, "twilio.ringing").map((e) => [e.outcome, e.detail])).toEqual([
      ["ignored", "out_of_order"],
      ["ignored", "stale"],
    ]);
    expect(appliedMoves(detail.events)).toEqual(["initiated", "in_progress"]);
  });
});

describe("duplicated and concurrent callbacks", () => {
  it("a redelivered callback (same token, or same CallSid and SequenceNumber) is acknowledged and recorded once", async () => {
    const call = await openTwilioCall(number);
    for (let i = 0; i < 3; i++)
      expect((await twilioStatus(call.callSid, number, "in-progress", { sequence: 2, token: "tok-same" })).status).toBe(204);
    for (let i = 0; i < 3; i++) expect((await twilioStatus(call.callSid, number, "completed", { sequence: 3 })).status).toBe(204);
    const detail = await callByCarrierId(token, call.callSid);
    expect(detail.status).toBe("completed");
    expect(eventsNamed(detail.events, "twilio.in-progress")).toHaveLength(1);
    expect(eventsNamed(detail.events, "twilio.completed")).toHaveLength(1);
  });

  it("many concurrent callbacks for one call end consistent, each delivery recorded once", async () => {
    const call = await openTwilioCall(number);
    const statuses = ["initiated", "ringing", "in-progress", "completed"];
    const deliveries = statuses.flatMap((status, sequence) =>
      Array.from({ length: 5 }, (_, copy) => ({ status, sequence, token: copy % 2 === 0 ? `tok-${call.callSid}-${sequence}` : undefined })),
    );
    const responses = await Promise.all(
      deliveries.map((d) => twilioStatus(call.callSid, number, d.status, { sequence: d.sequence, ...(d.token ? { token: d.token } : {}) })),
    );
    expect(new Set(responses.map((r) => r.status))).toEqual(new Set([204]));
    const detail = await callByCarrierId(token, call.callSid);
    expect(detail.status).toBe("completed");
    expect(detail.endedAt).not.toBeNull();
    // Five copies per status, some with a token and some without: the same signed content, so one delivery each.
    for (let sequence = 0; sequence < statuses.length; sequence++)
      expect(detail.events.filter((e) => e.carrierSequence === sequence)).toHaveLength(1);
    expect(detail.events.filter((e) => e.outcome === "applied" && e.toStatus === "completed")).toHaveLength(1);
    // The history is one gapless sequence, however the deliveries interleaved.
    expect(detail.events.map((e) => e.seq)).toEqual(detail.events.map((_, i) => i + 1));
  });
});

describe("terminal states are final", () => {
  it("nothing moves a completed call: later callbacks are ignored, control answers from the record", async () => {
    const call = await openTwilioCall(number);
    await twilioStatus(call.callSid, number, "in-progress", { sequence: 2 });
    await twilioStatus(call.callSid, number, "completed", { sequence: 3 });
    const before = await callByCarrierId(token, call.callSid);
    for (const [status, sequence] of [
      ["in-progress", 9],
      ["busy", 10],
      ["ringing", 11],
      ["failed", 12],
    ] as const) {
      expect((await twilioStatus(call.callSid, number, status, { sequence })).status).toBe(204);
    }
    expect((await api(`/api/v1/calls/${before.id}/hold`, { method: "POST", token })).status).toBe(409);
    const hangup = await api(`/api/v1/calls/${before.id}/hangup`, { method: "POST", token });
    expect(await hangup.json()).toEqual({ id: before.id, status: "completed" });
    const after = await callDetail(token, before.id);
    expect({ status: after.status, failureReason: after.failureReason, endedAt: after.endedAt }).toEqual({
      status: "completed",
      failureReason: null,
      endedAt: before.endedAt,
    });
    const late = after.events.filter((e) => e.carrierSequence !== null && e.carrierSequence >= 9);
    expect(late.map((e) => [e.outcome, e.detail])).toEqual([
      ["ignored", "terminal"],
      ["ignored", "terminal"],
      ["ignored", "terminal"],
      ["ignored", "terminal"],
    ]);
  });

  it("nothing moves a failed call either, not even a completed report", async () => {
    const call = await openTwilioCall(number);
    await twilioStatus(call.callSid, number, "busy", { sequence: 2 });
    await twilioStatus(call.callSid, number, "completed", { sequence: 3 });
    await twilioStatus(call.callSid, number, "in-progress", { sequence: 4 });
    const detail = await callByCarrierId(token, call.callSid);
    expect({ status: detail.status, failureReason: detail.failureReason, answeredAt: detail.answeredAt }).toEqual({
      status: "failed",
      failureReason: "busy",
      answeredAt: null,
    });
    expect(appliedMoves(detail.events)).toEqual(["initiated", "ringing", "failed"]);
  });

  it.each([
    ["busy", "busy"],
    ["no-answer", "no_answer"],
    ["canceled", "canceled"],
    ["failed", "carrier_failure"],
  ])("Twilio %s → failed with reason %s", async (twilioStatusName, reason) => {
    const call = await openTwilioCall(number);
    expect((await twilioStatus(call.callSid, number, twilioStatusName, { sequence: 2 })).status).toBe(204);
    const detail = await callByCarrierId(token, call.callSid);
    expect({ status: detail.status, failureReason: detail.failureReason, answeredAt: detail.answeredAt }).toEqual({
      status: "failed",
      failureReason: reason,
      answeredAt: null,
    });
    expect(detail.endedAt).not.toBeNull();
  });
});

describe("the carrier ends the call while its media stream still carries audio", () => {
  /** A call whose stream the provider has heard: the stream is started, its frames reach the simulator. */
  async function streamingCall(label: string) {
    const key = uniqueKey(label);
    await putScenario(key, { replies: ["Hello."] });
    const call = await twilioCallWith("openai", key);
    const caller = await openStream(call);
    await caller.silence(200);
    await heardFrames(key, caller.framesSent);
    return { key, call, caller };
  }

  /** The provider's one connection once it has heard `frames` caller frames. */
  const heardFrames = (key: string, frames: number) =>
    eventually(async () => {
      const [connection] = await simulatorConnections(key);
      return connection && connection.audioIn.frames >= frames && connection;
    }, 250);

  const closed = (caller: TwilioMediaCaller) => caller.until(() => caller.closeCode !== null);

  /** How the provider's one connection was closed, once it has been. */
  const providerClosed = (key: string) => eventually(async () => (await simulatorConnections(key))[0]?.close, 250);

  it("the status callback read before the stream's last frames: they still reach the provider, then its stop ends the call", async () => {
    const { key, call, caller } = await streamingCall("end-before-stop");
    // Two connections, no order between them: here the callback is read first, the carrier's last frames after it.
    expect((await twilioStatus(call.callSid, call.number, "completed")).status).toBe(204);
    await caller.silence(100);
    caller.stop();
    await closed(caller);
    // 200 ms then 100 ms of 20 ms frames: the stream stayed open for the last five, and the provider heard all.
    expect(caller.framesSent).toBe(15);
    expect((await heardFrames(key, 15)).audioIn.frames).toBe(15);
    expect(await providerClosed(key)).toMatchObject({ code: 1000, by: "client" });
    // The end's drain carries both lines to D1, the `stop` after the callback that ended the call.
    const detail = await eventually(async () => {
      const found = await callByCarrierId(call.token, call.callSid);
      return found.events.some((event) => event.event === "media.stop") && found;
    }, 250);
    expect(detail.status).toBe("completed");
    expect(detail.events.map((event) => event.event).slice(-2)).toEqual(["twilio.completed", "media.stop"]);
  });

  it("a stream that never says stop is closed anyway, and the call's end reaches D1", async () => {
    const { key, call, caller } = await streamingCall("end-without-stop");
    expect((await twilioStatus(call.callSid, call.number, "completed")).status).toBe(204);
    await closed(caller);
    expect(caller.closeCode).toBe(1000);
    await providerClosed(key);
    const detail = await eventually(async () => {
      const found = await callByCarrierId(call.token, call.callSid);
      return found.status === "completed" && found;
    }, 250);
    expect(appliedMoves(detail.events).at(-1)).toBe("completed");
  });
});

describe("GET /api/v1/calls and /api/v1/calls/{id}", () => {
  let own: Awaited<ReturnType<typeof tenantWithNumbers>>;
  let all: CallView[];

  beforeAll(async () => {
    own = await tenantWithNumbers([{ carrier: "twilio" }, { carrier: "telnyx" }]);
    const [twilioNumber, telnyxNumber] = own.numbers as [string, string];
    const completed = await openTwilioCall(twilioNumber);
    await twilioStatus(completed.callSid, twilioNumber, "completed", { sequence: 3 });
    const busy = await openTwilioCall(twilioNumber);
    await twilioStatus(busy.callSid, twilioNumber, "busy", { sequence: 2 });
    await openTwilioCall(twilioNumber);
    const telnyx = randomCallControlId();
    await postTelnyx(
      telnyxEnvelope("call.initiated", {
        call_control_id: telnyx,
        direction: "incoming",
        from: "+14155550100",
        to: telnyxNumber,
        state: "parked",
      }),
    );
    const placed = await api("/api/v1/calls", { method: "POST", token: own.token, body: { to: randomE164(), carrier: "twilio" } });
    expect(placed.status).toBe(201);
    all = (await listCalls(own.token)).items;
    expect(all).toHaveLength(5);
  });

  const ids = (items: CallView[]) => items.map((c) => c.id).sort();
  const expectFilter = async (query: string, keep: (c: CallView) => boolean) => {
    const expected = all.filter(keep);
    expect(expected.length, `${query} selects something and not everything`).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(all.length);
    expect(ids((await listCalls(own.token, query)).items)).toEqual(ids(expected));
  };

  it("lists newest first and filters by status, direction, carrier and a time window", async () => {
    const order = [...all].sort((a, b) =>
      a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt),
    );
    expect(all.map((c) => c.id)).toEqual(order.map((c) => c.id));
    await expectFilter("?status=completed", (c) => c.status === "completed");
    await expectFilter("?status=failed", (c) => c.status === "failed" && c.failureReason === "busy");
    await expectFilter("?direction=outbound", (c) => c.direction === "outbound");
    await expectFilter("?direction=inbound", (c) => c.direction === "inbound");
    await expectFilter("?carrier=telnyx", (c) => c.carrier === "telnyx");
    await expectFilter("?carrier=twilio&direction=inbound", (c) => c.carrier === "twilio" && c.direction === "inbound");
    const oldestFirst = [...all].reverse();
    const since = oldestFirst[2]!.createdAt;
    const until = oldestFirst[1]!.createdAt;
    await expectFilter(`?since=${since}`, (c) => c.createdAt >= since);
    await expectFilter(`?until=${until}`, (c) => c.createdAt <= until);
    await expectFilter(
      `?since=${oldestFirst[1]!.createdAt}&until=${oldestFirst[3]!.createdAt}`,
      (c) => c.createdAt >= oldestFirst[1]!.createdAt && c.createdAt <= oldestFirst[3]!.createdAt,
    );
    for (const bad of ["?status=ended", "?direction=sideways", "?carrier=vonage", "?since=yesterday", "?cursor=%21%21"]) {
      expect((await api(`/api/v1/calls${bad}`, { token: own.token })).status, bad).toBe(400);
    }
  });

  it("pages with nextCursor through every call exactly once, also under a filter", async () => {
    for (const [query, expected] of [
      ["", all],
      ["&direction=inbound", all.filter((c) => c.direction === "inbound")],
    ] as const) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: { items: CallView[]; nextCursor: string | null } = await listCalls(
          own.token,
          `?limit=2${query}${cursor ? `&cursor=${cursor}` : ""}`,
        );
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((c) => c.id));
        cursor = page.nextCursor;
        pages += 1;
      } while (cursor && pages < 10);
      expect(seen).toEqual(expected.map((c) => c.id));
      expect(pages).toBe(Math.ceil(expected.length / 2));
    }
  });

  it("GET /calls/{id} returns the call with its ordered history; other tenants and unknown ids get 404", async () => {
    const completed = all.find((c) => c.status === "completed")!;
    const detail = await callDetail(own.token, completed.id);
    expect(detail).toMatchObject({ id: completed.id, carrier: "twilio", direction: "inbound", to: own.numbers[0], status: "completed" });
    expect(detail.events.map((e) => e.seq)).toEqual(detail.events.map((_, i) => i + 1));
    expect(detail.events[0]).toMatchObject({
      source: "carrier",
      event: "call.opened",
      fromStatus: null,
      toStatus: "initiated",
      outcome: "applied",
    });
    expect(detail.events.at(-1)).toMatchObject({
      source: "carrier",
      event: "twilio.completed",
      fromStatus: "ringing",
      toStatus: "completed",
      outcome: "applied",
      carrierSequence: 3,
    });

    const stranger = await userWithToken(await createTenant(), "admin");
    expect((await api(`/api/v1/calls/${completed.id}`, { token: stranger.accessToken })).status).toBe(404);
    expect((await listCalls(stranger.accessToken)).items).toEqual([]);
    expect((await api(`/api/v1/calls/${crypto.randomUUID()}`, { token: own.token })).status).toBe(404);
  });
});
