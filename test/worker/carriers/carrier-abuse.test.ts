import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeSamples, differenceShare, silence } from "../support/audio-signals.ts";
import { callByCarrierId, callTraces, openTwilioCall, tenantWithNumbers, twilioStatus } from "../support/calls.ts";
import {
  BASE,
  closeCodeOf,
  eventually,
  openTwilioMedia,
  postTwilio,
  twilioCallParams,
  twilioSignature,
  twilioStart,
} from "../support/carriers.ts";
import { api } from "../support/identity.ts";
import { callerSpeech, putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";
import { TelnyxMediaCaller, telnyxCallWith } from "../support/telnyx-media-caller.ts";

/**
 * Carrier input tried as an attacker would: captured signed webhooks replayed with fresh (or no) idempotency tokens,
 * a replayed voice webhook fishing for the media credential, bodies that never end or are far too big, and media
 * streams whose codec is not what the platform asked for.
 */
let fixture: Awaited<ReturnType<typeof tenantWithNumbers>>;
let twilioNumber: string;

beforeAll(async () => {
  fixture = await tenantWithNumbers([{ carrier: "twilio" }]);
  [twilioNumber] = fixture.numbers as [string];
});

describe("replayed Twilio webhooks", () => {
  it("a signed status callback replayed with new tokens, or none, is acknowledged and changes nothing", async () => {
    const call = await openTwilioCall(twilioNumber);
    expect((await twilioStatus(call.callSid, twilioNumber, "in-progress", { sequence: 1, token: "original" })).status).toBe(204);
    const applied = await eventually(async () => {
      const detail = await callByCarrierId(fixture.token, call.callSid);
      return detail.events.some((e) => e.event === "twilio.in-progress") && detail;
    });
    const before = await callTraces();

    for (const token of ["replay-1", "replay-2", undefined, "original", "replay-3"]) {
      const response = await twilioStatus(call.callSid, twilioNumber, "in-progress", { sequence: 1, token });
      expect(response.status).toBe(204);
    }
    // A later, different callback still applies: the replays did not wedge the call.
    expect((await twilioStatus(call.callSid, twilioNumber, "completed", { sequence: 2, token: "end" })).status).toBe(204);
    const after = await eventually(async () => {
      const detail = await callByCarrierId(fixture.token, call.callSid);
      return detail.status === "completed" && detail;
    });
    expect(after.events.filter((e) => e.event === "twilio.in-progress")).toHaveLength(1);
    expect(after.events.length).toBe(applied.events.length + 1);
    expect((await callTraces()).events).toBe(before.events + 1);
  });

  it("a voice webhook replayed after the stream started gets no stream and no credential", async () => {
    const call = await openTwilioCall(twilioNumber);
    const socket = (await openTwilioMedia(call.streamUrl)).webSocket!;
    socket.accept();
    socket.send(twilioStart(call.callSid, call.mediaToken));
    await eventually(async () => (await callByCarrierId(fixture.token, call.callSid)).events.some((e) => e.event === "media.start"));

    const params = twilioCallParams(call.callSid, twilioNumber, "ringing");
    const replay = await postTwilio("/telephony/twilio/voice", params, { headers: { "I-Twilio-Idempotency-Token": "fresh" } });
    expect(replay.status).toBe(200);
    const twiml = await replay.text();
    expect(twiml).not.toContain("<Stream");
    expect(twiml).not.toContain(call.mediaToken);
    expect(twiml).toContain("<Response");
    const closed = closeCodeOf(socket);
    socket.close(1000, "done");
    await closed;
  });
});

describe("carrier bodies", () => {
  /** A signed-looking POST whose body streams in `chunk`-sized pieces, `chunks` times (forever when Infinity). */
  function streamingPost(path: string, chunk: number, chunks: number) {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ >= chunks) controller.close();
        else controller.enqueue(new TextEncoder().encode("a=".padEnd(chunk, "x")));
      },
    });
    const url = `${BASE}${path}`;
    return exports.default.fetch(
      new Request(url, {
        method: "POST",
        body,
        headers: {
          "Content-Type": "application/x-www-form-urlencoded",
          "CF-Connecting-IP": "203.0.113.77",
          "X-Twilio-Signature": twilioSignature(url, {}),
        },
      }),
    );
  }

  it("a chunked body that never ends is cut off at the bound with 413, before any signature is checked", async () => {
    const before = await callTraces();
    const response = await streamingPost("/telephony/twilio/status", 16 * 1024, Number.POSITIVE_INFINITY);
    expect(response.status).toBe(413);
    await response.arrayBuffer();
    expect(await callTraces()).toEqual(before);
  });

  it("a chunked body over the bound is refused; one under it reaches the signature check", async () => {
    const over = await streamingPost("/telephony/twilio/voice", 8 * 1024, 9);
    expect(over.status).toBe(413);
    await over.arrayBuffer();
    // 56 KiB, under the 64 KiB bound: read whole, then refused by the signature (it does not cover this body).
    const under = await streamingPost("/telephony/twilio/voice", 8 * 1024, 7);
    expect(under.status).toBe(403);
    await under.arrayBuffer();
  });
});

describe("codec mismatch on a Telnyx stream", () => {
  const PCMU = { encoding: "pcmu", sampleRate: 8000 } as const;

  /** Caller frames that reached the call's voice session so far (its live counters). */
  async function callerFrames(token: string, sessionId: string): Promise<number> {
    const response = await api(`/api/v1/sessions/${sessionId}`, { token });
    expect(response.status).toBe(200);
    return ((await response.json()) as { live: { counters: { callerFrames: number } } }).live.counters.callerFrames;
  }

  /** Sends a DTMF digit and waits until the call's history has it: every frame sent before it has been handled. */
  async function handled(caller: TelnyxMediaCaller, token: string, callControlId: string, digit: string) {
    caller.dtmf(digit);
    await eventually(async () =>
      (await callByCarrierId(token, callControlId)).events.some((e) => e.event === "media.dtmf" && e.detail === digit),
    );
  }

  it.each([
    ["no start at all", null],
    ["a start naming an encoding it cannot decode", "L16"],
  ])(
    "audio on a stream with %s reaches no provider (never decoded as a guess); a start it can decode lets it through",
    async (_, encoding) => {
      const key = uniqueKey("abuse-codec-unknown");
      const call = await telnyxCallWith("openai", "PCMU", key);
      const { sessionId } = await callByCarrierId(call.token, call.callControlId);
      const caller = await TelnyxMediaCaller.open(call.answer.stream_url, call.callControlId, encoding);
      await caller.speak(silence(PCMU, 1000));
      await handled(caller, call.token, call.callControlId, "1");
      expect(await callerFrames(call.token, sessionId)).toBe(0);

      caller.start("PCMU");
      await caller.speak(silence(PCMU, 1000));
      await handled(caller, call.token, call.callControlId, "2");
      // All but the few frames the reorder window may still hold.
      expect(await callerFrames(call.token, sessionId)).toBeGreaterThanOrEqual(45);
    },
  );

  it("a stream that starts again in A-law mid-call is decoded by its new start, and the caller still gets the µ-law asked for", async () => {
    const key = uniqueKey("abuse-codec-restart");
    await putScenario(key, { replies: ["Hello! How can I help you today?", "Certainly, let me look at that invoice."] });
    const call = await telnyxCallWith("openai", "PCMU", key);
    expect(call.answer.stream_bidirectional_codec).toBe("PCMU");
    const caller = await TelnyxMediaCaller.open(call.answer.stream_url, call.callControlId, "PCMU");
    await caller.speak(await callerSpeech("hello", "pcmu", 8000));
    await caller.speak(silence(PCMU, 600));
    await caller.until(() => caller.receivedBytes().length >= 8_000);
    const firstReply = caller.payloads.length;
    const firstBytes = caller.receivedBytes().length;

    caller.start("PCMA");
    await caller.speak(await callerSpeech("invoice", "pcma", 8000));
    await caller.speak(silence({ encoding: "pcma", sampleRate: 8000 }, 600));
    await caller.until(() => caller.receivedBytes().length >= firstBytes + 8_000); // a second of the second reply

    const [connection] = await simulatorConnections(key);
    expect(connection!.turns.entries).toHaveLength(2);
    expect(differenceShare(decodeSamples(caller.payloads.slice(firstReply), PCMU))).toBeLessThan(0.1);
  });
});
