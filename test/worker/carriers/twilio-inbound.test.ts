import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { openTwilioMedia, parseStreamTwiml, postTwilio, randomCallSid, randomE164, twilioCallParams } from "../support/carriers.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";

async function tenantWithNumber() {
  const admin = await userWithToken(await createTenant(), "admin");
  const number = randomE164();
  const created = await api("/api/v1/phone-numbers", {
    method: "POST",
    token: admin.accessToken,
    body: { e164: number, carrier: "twilio" },
  });
  expect(created.status).toBe(201);
  return { admin, number };
}

describe("Twilio inbound call", () => {
  it("webhook → TwiML stream → authenticated media → stop → completed in the API", async () => {
    const { admin, number } = await tenantWithNumber();
    const callSid = randomCallSid();
    const voice = await postTwilio("/telephony/twilio/voice", twilioCallParams(callSid, number, "ringing"));
    expect(voice.status).toBe(200);
    expect(voice.headers.get("Content-Type")).toContain("text/xml");
    const twiml = await voice.text();
    const { url, token } = parseStreamTwiml(twiml);
    expect(url).toMatch(/^wss:\/\/switchboard\.test\/telephony\/twilio\/media\/[0-9a-f-]{36}$/);

    const upgrade = await openTwilioMedia(url);
    expect(upgrade.status).toBe(101);
    const socket = upgrade.webSocket!;
    socket.accept();
    const streamSid = `MZ${crypto.randomUUID().replace(/-/g, "")}`;
    socket.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
    socket.send(
      JSON.stringify({
        event: "start",
        sequenceNumber: "1",
        streamSid,
        start: {
          accountSid: "AC",
          streamSid,
          callSid,
          tracks: ["inbound"],
          customParameters: { token },
          mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
        },
      }),
    );
    socket.send(
      JSON.stringify({
        event: "media",
        sequenceNumber: "2",
        streamSid,
        media: { track: "inbound", chunk: "1", timestamp: "0", payload: btoa("\xff".repeat(160)) },
      }),
    );
    socket.send(JSON.stringify({ event: "stop", sequenceNumber: "3", streamSid, stop: { accountSid: "AC", callSid } }));

    expect(
      (await postTwilio("/telephony/twilio/status", twilioCallParams(callSid, number, "in-progress", { SequenceNumber: "1" }))).status,
    ).toBe(204);
    expect(
      (
        await postTwilio(
          "/telephony/twilio/status",
          twilioCallParams(callSid, number, "completed", { SequenceNumber: "2", CallDuration: "12" }),
        )
      ).status,
    ).toBe(204);
    socket.close(1000, "done");

    const list = await api("/api/v1/calls", { token: admin.accessToken });
    const { items } = (await list.json()) as { items: Array<{ id: string; status: string; carrierCallId: string; direction: string }> };
    const call = items.find((item) => item.carrierCallId === callSid);
    expect(call).toMatchObject({ status: "completed", direction: "inbound" });
    const detail = (await (await api(`/api/v1/calls/${call!.id}`, { token: admin.accessToken })).json()) as {
      events: Array<{ event: string; toStatus: string | null; outcome: string }>;
    };
    const transitions = detail.events.filter((e) => e.outcome === "applied" && e.toStatus).map((e) => e.toStatus);
    expect(transitions).toEqual(["initiated", "ringing", "in_progress", "completed"]);
    // Media frames are handled as they arrive; the socket's lifecycle lands in the history too.
    expect(detail.events.map((e) => e.event)).toEqual(expect.arrayContaining(["media.start", "media.stop"]));
    // Its webhooks found its object by deriving the session id from the CallSid: no KV route was written for it.
    expect(await env.CACHE.get(`carrier-call:twilio:${callSid}`)).toBeNull();
  });

  it("answers an unknown number with a polite spoken rejection", async () => {
    const response = await postTwilio("/telephony/twilio/voice", twilioCallParams(randomCallSid(), "+15550000001", "ringing"));
    expect(response.status).toBe(200);
    const twiml = await response.text();
    expect(twiml).toContain("<Say>");
    expect(twiml).toContain("<Hangup/>");
  });

  it("a retried voice webhook gets the same stream and creates nothing twice", async () => {
    const { number } = await tenantWithNumber();
    const callSid = randomCallSid();
    const params = twilioCallParams(callSid, number, "ringing");
    const first = parseStreamTwiml(
      await (await postTwilio("/telephony/twilio/voice", params, { headers: { "I-Twilio-Idempotency-Token": "tok-1" } })).text(),
    );
    const second = parseStreamTwiml(
      await (await postTwilio("/telephony/twilio/voice", params, { headers: { "I-Twilio-Idempotency-Token": "tok-1" } })).text(),
    );
    expect(second).toEqual(first);
  });
});
