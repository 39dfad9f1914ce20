import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { LiveEvent } from "../../../workers/shared/live-protocol.ts";
import { eventually } from "../support/carriers.ts";
import { api, createTenant, randomIp, userWithToken } from "../support/identity.ts";
import { callerSpeech, putScenario, uniqueKey } from "../support/provider-simulator.ts";

/**
 * A web session (the caller is a browser on /live) escalates like a call, but has no phone line to transfer: the
 * supervisors get the event (without `transfer`), the record is kept, and the browser caller is never told.
 */

const sockets: WebSocket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.close(1000, "test done");
});

async function join(sessionId: string, token: string, role: "caller" | "supervisor") {
  const response = await exports.default.fetch(`https://switchboard.test/api/v1/sessions/${sessionId}/live?role=${role}`, {
    headers: { Upgrade: "websocket", "CF-Connecting-IP": randomIp(), "Sec-WebSocket-Protocol": `switchboard.v1, bearer.${token}` },
  });
  expect(response.status).toBe(101);
  const socket = response.webSocket!;
  socket.accept();
  sockets.push(socket);
  const events: LiveEvent[] = [];
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") events.push(JSON.parse(event.data) as LiveEvent);
  });
  return { socket, events };
}

describe("escalation in a web session", () => {
  it("tells the supervisors and records it; nothing is transferred and the browser caller is not told", async () => {
    const tenantId = await createTenant("Web escalation");
    const { accessToken: admin } = await userWithToken(tenantId, "admin");
    const settings = { escalation: { keywords: ["manager"], transferTo: "+15550004242" } };
    expect((await api("/api/v1/tenant/settings", { method: "PATCH", token: admin, body: settings })).status).toBe(200);
    const key = uniqueKey("escalate-web");
    await putScenario(key, { replies: ["Of course, one moment."], callerTranscripts: ["Can I talk to your manager?"] });
    const created = await api("/api/v1/sessions", {
      method: "POST",
      token: admin,
      body: { provider: "openai" },
      headers: { "X-Correlation-ID": key },
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };

    const supervisor = await join(id, admin, "supervisor");
    const caller = await join(id, admin, "caller");
    await eventually(async () => caller.events.some((event) => event.type === "hello"));
    const speech = await callerSpeech("hello", "pcm16", 16000);
    const pcm = new Uint8Array([...speech, ...new Uint8Array(16000)]); // then half a second of silence ends the turn
    for (let offset = 0, frames = 0; offset + 640 <= pcm.length; offset += 640) {
      caller.socket.send(pcm.slice(offset, offset + 640));
      if (++frames % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }

    const escalation = await eventually(async () => supervisor.events.find((event) => event.type === "escalation"), 400);
    expect(escalation).toEqual({ type: "escalation", rule: "keyword", reason: 'the caller said "manager"', at: expect.any(Number) });
    await eventually(async () => caller.events.some((event) => event.type === "transcript" && event.role === "agent"), 400);
    expect(caller.events.filter((event) => event.type === "escalation")).toEqual([]);
    const row = await eventually(async () =>
      env.DB.prepare("SELECT rule, transfer_to FROM session_escalations WHERE session_id = ?").bind(id).first(),
    );
    expect(row).toEqual({ rule: "keyword", transfer_to: null });
  });
});
