import { exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { LiveEvent } from "../../../workers/shared/live-protocol.ts";
import { tenantWithNumbers } from "../support/calls.ts";
import { api, randomIp } from "../support/identity.ts";
import { captureLogs } from "../support/logs.ts";
import { forgetProviderHealth } from "../support/provider-health.ts";
import { spokenCall } from "../support/spoken-call.ts";

/**
 * A tenant's `piiRedaction` on real calls: an inbound Twilio call to the Worker, its object and the simulated OpenAI
 * provider, whose caller transcript is scripted to carry a card number, an email and a phone number; the caller also
 * types a DTMF digit. What is stored (the session's transcript, the call's events) and what a supervisor on /live
 * sees is masked when the setting is "mask" and plain when "off"; no log line ever holds the transcript's text.
 */

beforeEach(forgetProviderHealth);

const SAID = "my card is 4111 1111 1111 1111 and my email is asha@example.com, call me on +919876543210";
const MASKED = "my card is [card ending 1111] and my email is [email], call me on [phone]";

const opened: WebSocket[] = [];
afterEach(() => {
  for (const socket of opened.splice(0)) socket.close(1000, "test done");
});

/** A supervisor's /live socket; every JSON event it receives is kept in order. */
async function watch(sessionId: string, token: string): Promise<LiveEvent[]> {
  const response = await exports.default.fetch(`https://switchboard.test/api/v1/sessions/${sessionId}/live`, {
    headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": `switchboard.v1, bearer.${token}`, "CF-Connecting-IP": randomIp() },
  });
  expect(response.status).toBe(101);
  const socket = response.webSocket!;
  socket.accept();
  opened.push(socket);
  const events: LiveEvent[] = [];
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") events.push(JSON.parse(event.data) as LiveEvent);
  });
  return events;
}

/** An inbound call to a fresh tenant whose admin set `piiRedaction` first; the caller says SAID, then types 4. */
async function callWith(piiRedaction: "off" | "mask") {
  const { token, numbers } = await tenantWithNumbers([{ carrier: "twilio", provider: "openai", instructions: "You take card payments." }]);
  const set = await api("/api/v1/tenant/settings", { method: "PATCH", token, body: { piiRedaction } });
  expect(set.status).toBe(200);
  let live: LiveEvent[] = [];
  const call = await spokenCall({
    token,
    number: numbers[0]!,
    said: SAID,
    beforeStream: async (sessionId) => {
      live = await watch(sessionId, token);
    },
  });
  return { ...call, live };
}

describe("PII redaction on a call", () => {
  it("mask: the card, email and phone are masked in the stored transcript and on /live; the DTMF digit too", async () => {
    const logs = captureLogs();
    const { transcript, events, live } = await callWith("mask");
    const callerLines = transcript.filter((line) => line.role === "caller").map((line) => line.text);
    expect(callerLines).toContain(MASKED);
    expect(callerLines).toContain("[DTMF] •");
    expect(JSON.stringify(transcript)).not.toContain("4111");
    expect(events.filter((event) => event.event === "media.dtmf").map((event) => event.detail)).toEqual(["•"]);
    const liveTranscript = live.flatMap((event) => (event.type === "transcript" && event.role === "caller" ? [event.text] : []));
    expect(liveTranscript).toContain(MASKED);
    expect(live.filter((event) => event.type === "dtmf")).toEqual([expect.objectContaining({ digit: "•" })]);
    expect(JSON.stringify(live)).not.toContain("4111");
    expect(JSON.stringify(logs.all())).not.toContain("4111");
  });

  it("off: stored and shown as said; still no log line holds the transcript's text", async () => {
    const logs = captureLogs();
    const { transcript, events, live } = await callWith("off");
    const callerLines = transcript.filter((line) => line.role === "caller").map((line) => line.text);
    expect(callerLines).toContain(SAID);
    expect(callerLines).toContain("[DTMF] 4");
    expect(events.filter((event) => event.event === "media.dtmf").map((event) => event.detail)).toEqual(["4"]);
    expect(live.filter((event) => event.type === "dtmf")).toEqual([expect.objectContaining({ digit: "4" })]);
    const written = JSON.stringify(logs.all());
    for (const fragment of ["4111", "asha@example.com", "9876543210", "my card is", "Thank you."]) expect(written).not.toContain(fragment);
  });
});
