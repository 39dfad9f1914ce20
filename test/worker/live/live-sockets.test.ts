import { evictDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { LiveEvent } from "../../../workers/shared/live-protocol.ts";
import { openTwilioCall, tenantWithNumbers, twilioStatus } from "../support/calls.ts";
import { closeCodeOf } from "../support/carriers.ts";
import { api, createTenant, randomIp, userWithToken } from "../support/identity.ts";

/**
 * `GET /api/v1/sessions/{id}/live` through the real Worker and the session's real object: refusals happen before
 * the object is touched (never a 101), a supervisor's browser authenticates with the subprotocol bearer, receives
 * the greeting, heartbeats and call state changes, and keeps working after the object is evicted (hibernation).
 * The object-side bounds are also driven directly at the object, as the Worker would forward a web caller.
 */
let tenantId: string;
let number: string;
let supervisor: string;
let viewer: string;
let agent: string;
let outsider: string;
const opened: WebSocket[] = [];

beforeAll(async () => {
  const fixture = await tenantWithNumbers([{ carrier: "twilio" }]);
  tenantId = fixture.tenantId;
  number = fixture.numbers[0]!;
  supervisor = (await userWithToken(tenantId, "supervisor")).accessToken;
  viewer = (await userWithToken(tenantId, "viewer")).accessToken;
  agent = (await userWithToken(tenantId, "agent")).accessToken;
  outsider = (await userWithToken(await createTenant("Elsewhere"), "admin")).accessToken;
});

afterEach(() => {
  for (const socket of opened.splice(0)) {
    try {
      socket.close(1000, "test done");
    } catch {
      // Already closed by the server.
    }
  }
});

interface LiveOptions {
  role?: string;
  /** Offered as `Sec-WebSocket-Protocol` (a browser). */
  protocols?: string[];
  /** Sent as `Authorization: Bearer` (a script). */
  bearer?: string;
  upgrade?: boolean;
}

function live(sessionId: string, options: LiveOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { "CF-Connecting-IP": randomIp() };
  if (options.upgrade !== false) headers.Upgrade = "websocket";
  if (options.protocols) headers["Sec-WebSocket-Protocol"] = options.protocols.join(", ");
  if (options.bearer) headers.Authorization = `Bearer ${options.bearer}`;
  const query = options.role ? `?role=${options.role}` : "";
  return exports.default.fetch(`https://switchboard.test/api/v1/sessions/${sessionId}/live${query}`, { headers });
}

const browser = (token: string) => ["switchboard.v1", `bearer.${token}`];

/** A client socket whose messages are queued from the start, so none is missed between awaits. */
class Client {
  private readonly queue: Array<string | ArrayBuffer> = [];
  private waiter: (() => void) | null = null;
  readonly closed: Promise<number>;

  constructor(readonly socket: WebSocket) {
    socket.accept();
    opened.push(socket);
    this.closed = closeCodeOf(socket);
    socket.addEventListener("message", (event) => {
      this.queue.push(event.data as string | ArrayBuffer);
      this.waiter?.();
    });
  }

  /** The next JSON event matching `type`, skipping others (e.g. call_state while waiting for a pong). */
  async next<T extends LiveEvent["type"]>(type: T): Promise<Extract<LiveEvent, { type: T }>> {
    for (;;) {
      const index = this.queue.findIndex((item) => typeof item === "string" && (JSON.parse(item) as LiveEvent).type === type);
      if (index >= 0) return JSON.parse(this.queue.splice(index, 1)[0] as string);
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  async ping(t: number): Promise<Extract<LiveEvent, { type: "pong" }>> {
    this.socket.send(JSON.stringify({ type: "ping", t }));
    return this.next("pong");
  }

  send(data: string | ArrayBuffer | Uint8Array) {
    this.socket.send(data);
  }
}

async function connected(response: Response): Promise<Client> {
  expect(response.status).toBe(101);
  return new Client(response.webSocket!);
}

const stubOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));

describe("refusals happen in the Worker, before any socket", () => {
  it("no credential, a bad token, or a subprotocol list without switchboard.v1 never gets a 101", async () => {
    const { sessionId } = await openTwilioCall(number);
    const none = await live(sessionId);
    expect(none.status).toBe(401);
    expect(none.webSocket).toBeNull();
    expect(none.headers.get("WWW-Authenticate")).toBe("Bearer");

    const onlyProtocol = await live(sessionId, { protocols: ["switchboard.v1"] });
    expect(onlyProtocol.status).toBe(401);

    const tampered = `${supervisor.slice(0, -4)}AAAA`;
    for (const response of [
      await live(sessionId, { protocols: browser(tampered) }),
      await live(sessionId, { bearer: "not-a-real-token-at-all" }),
    ]) {
      expect(response.status).toBe(401);
      expect(response.webSocket).toBeNull();
      const body = await response.text();
      expect(body).not.toContain(tampered);
    }

    const foreign = await live(sessionId, { protocols: [`bearer.${supervisor}`] });
    expect(foreign.status).toBe(400);
    expect(foreign.webSocket).toBeNull();
    const twice = await live(sessionId, { protocols: browser(supervisor), bearer: supervisor });
    expect(twice.status).toBe(400);
  });

  it("role=caller needs sessions:create (a viewer is refused) and a web session (a phone session is not one)", async () => {
    const { sessionId } = await openTwilioCall(number);
    const asViewer = await live(sessionId, { role: "caller", protocols: browser(viewer) });
    expect(asViewer.status).toBe(403);
    expect(asViewer.webSocket).toBeNull();
    const onPhone = await live(sessionId, { role: "caller", protocols: browser(agent) });
    expect(onPhone.status).toBe(409);
    expect(onPhone.webSocket).toBeNull();
    const badRole = await live(sessionId, { role: "boss", protocols: browser(viewer) });
    expect(badRole.status).toBe(400);
  });

  it("another tenant's session and an unknown session both answer 404, alike", async () => {
    const { sessionId } = await openTwilioCall(number);
    const crossTenant = await live(sessionId, { protocols: browser(outsider) });
    const unknown = await live(crypto.randomUUID(), { protocols: browser(supervisor) });
    const malformedId = await live("not-a-session", { protocols: browser(supervisor) });
    for (const response of [crossTenant, unknown, malformedId]) {
      expect(response.status).toBe(404);
      expect(response.webSocket).toBeNull();
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found");
    }
  });

  it("a request that is not an upgrade gets 426", async () => {
    const { sessionId } = await openTwilioCall(number);
    const response = await live(sessionId, { bearer: supervisor, upgrade: false });
    expect(response.status).toBe(426);
    expect(response.webSocket).toBeNull();
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("upgrade_required");
  });
});

describe("a supervisor watching a phone session", () => {
  it("authenticates with the subprotocol bearer, is greeted, heartbeats, and sees the call's state changes", async () => {
    const call = await openTwilioCall(number);
    const response = await live(call.sessionId, { protocols: browser(supervisor) });
    expect(response.headers.get("Sec-WebSocket-Protocol")).toBe("switchboard.v1");
    expect(response.headers.get("X-Correlation-ID")).toBeTruthy();
    const client = await connected(response);

    const hello = await client.next("hello");
    expect(hello).toMatchObject({ sessionId: call.sessionId, role: "supervisor", channel: "phone", callStatus: "ringing" });
    expect(typeof hello.serverTime).toBe("number");

    const pong = await client.ping(123.5);
    expect(pong.t).toBe(123.5);
    expect(pong.serverTime).toBeGreaterThanOrEqual(hello.serverTime);

    expect((await twilioStatus(call.callSid, number, "in-progress", { sequence: 2 })).status).toBe(204);
    expect(await client.next("call_state")).toMatchObject({ status: "in_progress", reason: null });
    // A stale report moves nothing, so nothing is broadcast for it; the next event is the real end of the call.
    expect((await twilioStatus(call.callSid, number, "ringing", { sequence: 1 })).status).toBe(204);
    expect((await twilioStatus(call.callSid, number, "completed", { sequence: 4 })).status).toBe(204);
    const ended = await client.next("call_state");
    expect(ended.status).toBe("completed");
    // The socket outlives the call: the supervisor still sees the final state and can keep pinging.
    expect((await client.ping(7)).t).toBe(7);
  });

  it("a script authenticates with Authorization (an API key here) and gets no subprotocol back", async () => {
    const { sessionId } = await openTwilioCall(number);
    const admin = await userWithToken(tenantId, "admin");
    const created = await api("/api/v1/api-keys", {
      method: "POST",
      token: admin.accessToken,
      body: { name: "wallboard", role: "viewer" },
    });
    const { key } = (await created.json()) as { key: string };
    const response = await live(sessionId, { bearer: key });
    expect(response.headers.get("Sec-WebSocket-Protocol")).toBeNull();
    const client = await connected(response);
    expect((await client.next("hello")).role).toBe("supervisor");
    // The browser spelling takes an API key too.
    const viaProtocol = await connected(await live(sessionId, { protocols: browser(key) }));
    expect((await viaProtocol.ping(1)).t).toBe(1);
  });

  it("malformed, unknown and binary frames are skipped; an oversized text frame closes with 1009", async () => {
    const { sessionId } = await openTwilioCall(number);
    const client = await connected(await live(sessionId, { protocols: browser(viewer) }));
    await client.next("hello");
    client.send("not json");
    client.send(JSON.stringify({ type: "shout" }));
    client.send(JSON.stringify({ type: "ping", t: "soon" }));
    client.send(new Uint8Array(320));
    expect((await client.ping(42)).t).toBe(42);

    client.send(JSON.stringify({ type: "ping", t: 1, pad: "x".repeat(5_000) }));
    expect(await client.closed).toBe(1009);
  });

  it("survives eviction of the object: the hibernated socket still answers pings", async () => {
    const call = await openTwilioCall(number);
    const client = await connected(await live(call.sessionId, { protocols: browser(supervisor) }));
    await client.next("hello");
    // End the call first: a live call's outbound provider socket keeps the object in memory (it cannot be evicted),
    // and what must survive here is the browser's socket, which is hibernatable whatever the call is doing.
    expect((await twilioStatus(call.callSid, number, "completed", { sequence: 2 })).status).toBe(204);
    expect((await client.next("call_state")).status).toBe("completed");
    await evictDurableObject(stubOf(call.sessionId));
    expect((await client.ping(99)).t).toBe(99);
    await evictDurableObject(stubOf(call.sessionId));
    expect((await client.ping(100)).t).toBe(100);
    // A new watcher after eviction is greeted from the rebuilt record.
    const late = await connected(await live(call.sessionId, { protocols: browser(viewer) }));
    expect(await late.next("hello")).toMatchObject({ callStatus: "completed", sessionId: call.sessionId });
  });
});

describe("the object's own checks (as the Worker forwards a socket)", () => {
  const forward = (sessionId: string, attachment: unknown) =>
    stubOf(sessionId).fetch(
      new Request("https://session.internal/live", {
        headers: {
          Upgrade: "websocket",
          "X-Correlation-ID": "test-correlation",
          "X-Live-Attachment": typeof attachment === "string" ? attachment : JSON.stringify(attachment),
        },
      }),
    );
  const caller = (extra: object = {}) => ({
    tenantId,
    principal: { kind: "api_key", id: "key-1" },
    role: "caller",
    roles: ["admin", "supervisor", "agent"],
    correlationId: "test-correlation",
    ...extra,
  });

  it("refuses a bad attachment (400), another tenant (404) and a session it does not hold (404)", async () => {
    const { sessionId } = await openTwilioCall(number);
    expect((await forward(sessionId, "{")).status).toBe(400);
    expect((await forward(sessionId, { ...caller(), admin: true })).status).toBe(400);
    expect((await forward(sessionId, caller({ tenantId: crypto.randomUUID() }))).status).toBe(404);
    expect((await forward(crypto.randomUUID(), caller())).status).toBe(404);
  });

  it("caller audio: odd-length frames skipped, a newer caller replaces the older (4000), oversized closes 1009", async () => {
    const { sessionId } = await openTwilioCall(number);
    const first = await connected(await forward(sessionId, caller()));
    // Not recorded (the tenant's default): nothing to tell the caller before the agent.
    expect(await first.next("hello")).toMatchObject({ role: "caller", consent: null });
    first.send(new Uint8Array(321));
    first.send(new Uint8Array(640));
    expect((await first.ping(1)).t).toBe(1);

    const second = await connected(await forward(sessionId, caller()));
    expect(await first.closed).toBe(4000);
    await second.next("hello");
    second.send(new Uint8Array(16 * 1024 + 2));
    expect(await second.closed).toBe(1009);
  });

  it("caller audio over 100 frames a second is dropped; a flood closes the socket with 1008", async () => {
    const { sessionId } = await openTwilioCall(number);
    const client = await connected(await forward(sessionId, caller()));
    await client.next("hello");
    for (let i = 0; i < 150; i++) client.send(new Uint8Array(640));
    expect((await client.ping(2)).t).toBe(2);
    // 300 more is a flood whether or not a new one-second window began in between.
    for (let i = 0; i < 300; i++) client.send(new Uint8Array(640));
    expect(await client.closed).toBe(1008);
  });
});
