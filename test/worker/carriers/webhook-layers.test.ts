import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { mediaCredential } from "../../../workers/carriers/media-credential.ts";
import { TEST_MEDIA_STREAM_SECRET } from "../../support/test-settings.ts";
import { callByCarrierId, callTraces, openTwilioCall, tenantWithNumbers, twilioStatus } from "../support/calls.ts";
import {
  BASE,
  closeCodeOf,
  eventually,
  openTelnyxMedia,
  openTwilioMedia,
  postTelnyx,
  postTwilio,
  randomCallControlId,
  randomCallSid,
  simRequests,
  telnyxEnvelope,
  twilioCallParams,
  twilioSignature,
  twilioStart,
} from "../support/carriers.ts";

/**
 * The four layers every carrier request passes (workers/carriers/webhook-guard.ts and each carrier's guard.ts), exercised through the real
 * Worker in their order: budgets (carrier-budgets.tight-limits.test.ts, at a test's size), IP allowlist, signature,
 * freshness/replay. Every rejection is a request
 * that WOULD have opened or changed a call had it been accepted, so "no new rows" is a real check; each group also
 * shows the same request passing when it is well-formed.
 */
let fixture: Awaited<ReturnType<typeof tenantWithNumbers>>;
let twilioNumber: string;
let telnyxNumber: string;

beforeAll(async () => {
  fixture = await tenantWithNumbers([{ carrier: "twilio" }, { carrier: "telnyx" }]);
  [twilioNumber, telnyxNumber] = fixture.numbers as [string, string];
});

const newTwilioCall = () => twilioCallParams(randomCallSid(), twilioNumber, "ringing");
const newTelnyxCall = (callControlId = randomCallControlId()) =>
  telnyxEnvelope("call.initiated", {
    call_control_id: callControlId,
    direction: "incoming",
    from: "+14155550100",
    to: telnyxNumber,
    state: "parked",
  });

/** Asserts the response and that it left no session, call or event behind. */
async function expectRejected(send: () => Promise<Response>, status: number) {
  const before = await callTraces();
  const response = await send();
  expect(response.status).toBe(status);
  await response.arrayBuffer();
  expect(await callTraces()).toEqual(before);
  return response;
}

/** Same Ed25519 scheme as Telnyx, but a key the Worker does not trust. */
async function postTelnyxWithForeignKey(body: unknown) {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as CryptoKeyPair;
  const raw = JSON.stringify(body);
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = await crypto.subtle.sign("Ed25519", pair.privateKey, new TextEncoder().encode(`${timestamp}|${raw}`));
  return exports.default.fetch(`${BASE}/telephony/telnyx/webhook`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "CF-Connecting-IP": "192.76.120.130",
      "telnyx-signature-ed25519": btoa(String.fromCharCode(...new Uint8Array(signature))),
      "telnyx-timestamp": timestamp,
    },
    body: raw,
  });
}

describe("layer 2: IP allowlist", () => {
  it("refuses a signed Telnyx call.initiated from outside Telnyx's ranges, IPv4 and IPv6", async () => {
    await expectRejected(() => postTelnyx(newTelnyxCall(), { ip: "8.8.8.8" }), 403);
    await expectRejected(() => postTelnyx(newTelnyxCall(), { ip: "2001:4860:4860::8888" }), 403);
    await expectRejected(() => postTelnyx(newTelnyxCall(), { ip: "::ffff:8.8.8.8" }), 403);
  });

  it("lets Telnyx in from its ranges, also spelled IPv4-mapped, and the call opens", async () => {
    const callControlId = randomCallControlId();
    const response = await postTelnyx(newTelnyxCall(callControlId), { ip: "::ffff:192.76.120.131" });
    expect(response.status).toBe(200);
    expect((await callByCarrierId(fixture.token, callControlId)).status).toBe("initiated");
  });

  it("is off for Twilio by default: a signed webhook from any address reaches the call", async () => {
    for (const ip of ["8.8.8.8", "2001:4860:4860::8844"]) {
      const params = newTwilioCall();
      const response = await postTwilio("/telephony/twilio/voice", params, { ip });
      expect(response.status).toBe(200);
      expect(await response.text()).toContain("<Stream");
      expect((await callByCarrierId(fixture.token, params.CallSid)).status).toBe("ringing");
    }
  });
});

describe("layer 3: signatures", () => {
  const voice = "/telephony/twilio/voice";

  it("Twilio: missing → 400; wrong, tampered or signed for another URL → 403; none opens a call", async () => {
    await expectRejected(() => postTwilio(voice, newTwilioCall(), { signature: null }), 400);
    await expectRejected(
      () => postTwilio(voice, newTwilioCall(), { signature: twilioSignature(`${BASE}${voice}`, { CallSid: "CA0" }) }),
      403,
    );
    await expectRejected(() => postTwilio(voice, newTwilioCall(), { signature: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" }), 403);
    const params = newTwilioCall();
    const signedForOriginal = twilioSignature(`${BASE}${voice}`, params);
    await expectRejected(() => postTwilio(voice, { ...params, To: "+15550009999" }, { signature: signedForOriginal }), 403);
    await expectRejected(() => postTwilio(voice, { ...params, CallStatus: "in-progress" }, { signature: signedForOriginal }), 403);
    await expectRejected(() => postTwilio(voice, { ...params, Extra: "1" }, { signature: signedForOriginal }), 403);
    for (const url of [`${BASE}/telephony/twilio/status`, `https://evil.example${voice}`, `${BASE}${voice}?sessionId=x`]) {
      await expectRejected(() => postTwilio(voice, params, { signature: twilioSignature(url, params) }), 403);
    }
    // The untouched original passes: the rejections above were about the signature alone.
    const accepted = await postTwilio(voice, params, { signature: signedForOriginal });
    expect(accepted.status).toBe(200);
    await accepted.arrayBuffer();
  });

  it("Twilio: a forged status callback cannot move an existing call", async () => {
    const call = await openTwilioCall(twilioNumber);
    const completed = twilioCallParams(call.callSid, twilioNumber, "completed", { SequenceNumber: "3" });
    await expectRejected(() => postTwilio("/telephony/twilio/status", completed, { signature: "bm90IGEgc2lnbmF0dXJl" }), 403);
    const signedInProgress = twilioSignature(`${BASE}/telephony/twilio/status`, { ...completed, CallStatus: "in-progress" });
    await expectRejected(() => postTwilio("/telephony/twilio/status", completed, { signature: signedInProgress }), 403);
    expect((await callByCarrierId(fixture.token, call.callSid)).status).toBe("ringing");
  });

  it("Telnyx: missing headers, a tampered body or another key → 403, and nothing opens", async () => {
    const body = newTelnyxCall();
    const raw = JSON.stringify(body);
    const post = (headers: Record<string, string>) =>
      exports.default.fetch(`${BASE}/telephony/telnyx/webhook`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "CF-Connecting-IP": "192.76.120.130", ...headers },
        body: raw,
      });
    const now = String(Math.floor(Date.now() / 1000));
    await expectRejected(() => post({}), 403);
    await expectRejected(() => post({ "telnyx-timestamp": now }), 403);
    await expectRejected(() => post({ "telnyx-signature-ed25519": btoa("x".repeat(64)) }), 403);
    await expectRejected(() => postTelnyx(body, { tamper: true }), 403);
    await expectRejected(() => postTelnyxWithForeignKey(body), 403);
  });
});

describe("layer 4: freshness and replays", () => {
  it("Telnyx: a timestamp outside WEBHOOK_MAX_SKEW_SECONDS, past or future, is refused even when the signature is valid", async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRejected(() => postTelnyx(newTelnyxCall(), { timestamp: now - 600 }), 403);
    await expectRejected(() => postTelnyx(newTelnyxCall(), { timestamp: now + 600 }), 403);
    const inside = randomCallControlId();
    const response = await postTelnyx(newTelnyxCall(inside), { timestamp: now - 60 });
    expect(response.status).toBe(200);
    expect((await callByCarrierId(fixture.token, inside)).status).toBe("initiated");
  });

  it("Twilio: a replayed status callback (same idempotency token) is acknowledged and applied once", async () => {
    const call = await openTwilioCall(twilioNumber);
    const send = () => twilioStatus(call.callSid, twilioNumber, "in-progress", { sequence: 2, token: `tok-${crypto.randomUUID()}` });
    const token = `tok-${crypto.randomUUID()}`;
    const replay = () => twilioStatus(call.callSid, twilioNumber, "in-progress", { sequence: 2, token });
    expect((await replay()).status).toBe(204);
    const traces = await callTraces();
    expect((await replay()).status).toBe(204);
    expect((await replay()).status).toBe(204);
    expect(await callTraces()).toEqual(traces);
    const { events, status } = await callByCarrierId(fixture.token, call.callSid);
    expect(status).toBe("in_progress");
    expect(events.filter((e) => e.event === "twilio.in-progress")).toHaveLength(1);
    // The token is not signed: the same signed content under a new token is the same delivery (carrier-abuse.test.ts).
    expect((await send()).status).toBe(204);
    const after = await callByCarrierId(fixture.token, call.callSid);
    expect(after.events.filter((e) => e.event === "twilio.in-progress").map((e) => e.outcome)).toEqual(["applied"]);
  });

  it("Twilio: a duplicated (CallSid, SequenceNumber) without a token is acknowledged and recorded once", async () => {
    const call = await openTwilioCall(twilioNumber);
    const responses = await Promise.all([1, 2, 3].map(() => twilioStatus(call.callSid, twilioNumber, "completed", { sequence: 3 })));
    expect(responses.map((r) => r.status)).toEqual([204, 204, 204]);
    const { events, status } = await callByCarrierId(fixture.token, call.callSid);
    expect(status).toBe("completed");
    expect(events.filter((e) => e.carrierSequence === 3)).toHaveLength(1);
  });

  it("Telnyx: a redelivered event (same event id) is acknowledged and recorded once", async () => {
    const callControlId = randomCallControlId();
    expect((await postTelnyx(newTelnyxCall(callControlId))).status).toBe(200);
    const answered = telnyxEnvelope("call.answered", { call_control_id: callControlId, to: telnyxNumber });
    for (let i = 0; i < 3; i++) expect((await postTelnyx(answered)).status).toBe(200);
    const { events, status } = await callByCarrierId(fixture.token, callControlId);
    expect(status).toBe("in_progress");
    expect(events.filter((e) => e.event === "call.answered")).toHaveLength(1);
  });
});

describe("media upgrades", () => {
  it("Twilio: an upgrade without, or with a bad, X-Twilio-Signature never reaches 101", async () => {
    const call = await openTwilioCall(twilioNumber);
    const other = await openTwilioCall(twilioNumber);
    for (const signature of [
      null,
      "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      twilioSignature(other.streamUrl, {}),
      twilioSignature(call.streamUrl.replace("wss:", "https:"), {}),
    ]) {
      const response = await openTwilioMedia(call.streamUrl, { signature });
      expect(response.status).toBe(403);
      expect(response.webSocket).toBeNull();
    }
  });

  it("Telnyx: a wrong or missing path token → 403; from outside Telnyx's ranges → 403; the right one → 101", async () => {
    const callControlId = randomCallControlId();
    expect((await postTelnyx(newTelnyxCall(callControlId))).status).toBe(200);
    const { sessionId } = await callByCarrierId(fixture.token, callControlId);
    const base = `wss://switchboard.test/telephony/telnyx/media/${sessionId}`;
    for (const url of [`${base}/not-the-token`, base]) expect((await openTelnyxMedia(url)).status).toBe(403);

    // The real token is only known to Telnyx (it is in the answer command); read it back from the fake.
    const answer = await eventually(
      async () => (await simRequests({ carrier: "telnyx", callId: callControlId, path: "/actions/answer" }))[0],
    );
    const streamUrl = (answer.body as { stream_url: string }).stream_url;
    expect((await openTelnyxMedia(streamUrl, "8.8.4.4")).status).toBe(403);
    const accepted = await openTelnyxMedia(streamUrl);
    expect(accepted.status).toBe(101);
    accepted.webSocket!.accept();
    accepted.webSocket!.close(1000, "done");
  });

  it("Telnyx: the media credential is checked in the Worker, before the call's object is reached", async () => {
    const unknownSession = crypto.randomUUID();
    const base = `wss://switchboard.test/telephony/telnyx/media/${unknownSession}`;
    // A forged credential is refused by the Worker (403); had it reached the object, the unknown call would be a 404.
    expect((await openTelnyxMedia(`${base}/forged-credential-0123456789`)).status).toBe(403);
    // The real credential for that session id passes the Worker, and only then does the object say it has no call.
    expect((await openTelnyxMedia(`${base}/${await mediaCredential(TEST_MEDIA_STREAM_SECRET, unknownSession)}`)).status).toBe(404);
  });

  it("Twilio: a replayed upgrade that cannot authenticate never replaces the live stream", async () => {
    const call = await openTwilioCall(twilioNumber);
    const live = (await openTwilioMedia(call.streamUrl)).webSocket!;
    live.accept();
    let liveClosed = false;
    live.addEventListener("close", () => {
      liveClosed = true;
    });
    live.send(twilioStart(call.callSid, call.mediaToken, "MZlive"));

    // The captured, validly signed upgrade is replayed twice: once silent, once with a guessed token.
    const silent = (await openTwilioMedia(call.streamUrl)).webSocket!;
    silent.accept();
    const replay = (await openTwilioMedia(call.streamUrl)).webSocket!;
    replay.accept();
    const replayClosed = closeCodeOf(replay);
    replay.send(twilioStart(call.callSid, "guessed-token", "MZreplay"));
    expect(await replayClosed).toBe(1008);

    // The caller's stream still carries the call.
    live.send(JSON.stringify({ event: "dtmf", sequenceNumber: "2", streamSid: "MZlive", dtmf: { track: "inbound_track", digit: "8" } }));
    const detail = await eventually(async () => {
      const seen = await callByCarrierId(fixture.token, call.callSid);
      return seen.events.some((e) => e.event === "media.dtmf") && seen;
    });
    expect(detail.events.filter((e) => e.event === "media.dtmf").map((e) => e.detail)).toEqual(["8"]);
    expect(liveClosed).toBe(false);
    silent.close(1000, "done");
    live.close(1000, "done");
  });

  it("Twilio: a stream whose start carries a wrong token is closed with 1008 and its media is not taken", async () => {
    const call = await openTwilioCall(twilioNumber);
    const upgrade = await openTwilioMedia(call.streamUrl);
    expect(upgrade.status).toBe(101);
    const socket = upgrade.webSocket!;
    socket.accept();
    const closed = closeCodeOf(socket);
    socket.send(twilioStart(call.callSid, "wrong-token"));
    socket.send(JSON.stringify({ event: "dtmf", sequenceNumber: "2", streamSid: "MZ1", dtmf: { track: "inbound_track", digit: "5" } }));
    socket.send(
      JSON.stringify({ event: "stop", sequenceNumber: "3", streamSid: "MZ1", stop: { accountSid: "AC", callSid: call.callSid } }),
    );
    expect(await closed).toBe(1008);
    socket.close(1000, "done");

    // Frames sent before `start` are refused the same way.
    const early = await openTwilioMedia(call.streamUrl);
    const earlySocket = early.webSocket!;
    earlySocket.accept();
    const earlyClosed = closeCodeOf(earlySocket);
    earlySocket.send(
      JSON.stringify({ event: "dtmf", sequenceNumber: "1", streamSid: "MZ1", dtmf: { track: "inbound_track", digit: "7" } }),
    );
    expect(await earlyClosed).toBe(1008);
    earlySocket.close(1000, "done");

    const { events } = await callByCarrierId(fixture.token, call.callSid);
    expect(events.filter((e) => e.event.startsWith("media."))).toEqual([]);

    // Control: with the right token the same frames are taken and land in the history.
    const good = await openTwilioMedia(call.streamUrl);
    const goodSocket = good.webSocket!;
    goodSocket.accept();
    goodSocket.send(twilioStart(call.callSid, call.mediaToken));
    goodSocket.send(JSON.stringify({ event: "dtmf", sequenceNumber: "2", streamSid: "MZ1", dtmf: { track: "inbound_track", digit: "5" } }));
    const detail = await eventually(async () => {
      const seen = await callByCarrierId(fixture.token, call.callSid);
      return seen.events.some((e) => e.event === "media.dtmf") && seen;
    });
    expect(detail.events.filter((e) => e.event.startsWith("media.")).map((e) => [e.event, e.detail])).toEqual([
      ["media.start", "pcmu"],
      ["media.dtmf", "5"],
    ]);
    goodSocket.close(1000, "done");
  });
});
