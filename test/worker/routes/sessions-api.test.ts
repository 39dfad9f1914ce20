import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { TranscriptLog } from "../../../durable-objects/call/transcript-log.ts";
import { database } from "../../../workers/shared/db/client.ts";
import { calls, sessions, transcriptLines } from "../../../workers/shared/db/schema.ts";
import { api, createTenant, errorOf, userWithToken } from "../support/identity.ts";

/**
 * The sessions read API against rows seeded in the real D1 for two tenants: filters, keyset pagination, the detail
 * with its latest call and ordered transcript, 404 across tenants, and validation of every filter.
 */
type SessionView = {
  id: string;
  channel: string;
  status: string;
  provider: string;
  instructions: string | null;
  correlationId: string;
  createdAt: string;
  endedAt: string | null;
};
type SessionDetail = SessionView & {
  call: Record<string, unknown> | null;
  transcript: Array<{ seq: number; role: string; text: string; provider: string; interrupted: boolean; at: string }>;
};
type Page = { items: SessionView[]; nextCursor: string | null };

const T = Date.UTC(2031, 0, 1);
const db = () => database(env.DB);

let adminA: string;
let viewerA: string;
let adminB: string;
let tenantA: string;
let tenantB: string;
const A: Record<string, string> = {};
let sessionB: string;
let latestCallOfPhone: string;

async function seedSession(tenantId: string, fields: Partial<typeof sessions.$inferInsert> & { createdAt: number }) {
  const id = crypto.randomUUID();
  await db()
    .insert(sessions)
    .values({ id, tenantId, channel: "phone", status: "active", provider: "openai", correlationId: `corr-${id.slice(0, 8)}`, ...fields });
  return id;
}

async function seedCall(tenantId: string, sessionId: string, createdAt: number, status: typeof calls.$inferInsert.status) {
  const id = crypto.randomUUID();
  await db()
    .insert(calls)
    .values({
      id,
      tenantId,
      sessionId,
      carrier: "twilio",
      carrierCallId: `CA${id.replace(/-/g, "")}`,
      direction: "inbound",
      fromNumber: "+15550001000",
      toNumber: "+15550002000",
      status,
      failureReason: status === "failed" ? "busy" : null,
      answeredAt: status === "in_progress" ? createdAt + 500 : null,
      endedAt: status === "failed" ? createdAt + 100 : null,
      createdAt,
      updatedAt: createdAt + 500,
    });
  return id;
}

async function seedLine(tenantId: string, sessionId: string, seq: number, fields: Partial<typeof transcriptLines.$inferInsert> = {}) {
  await db()
    .insert(transcriptLines)
    .values({
      id: `${sessionId}:${seq}`,
      tenantId,
      sessionId,
      seq,
      role: seq % 2 ? "caller" : "agent",
      text: `line ${seq}`,
      provider: "openai",
      interrupted: false,
      itemId: null,
      occurredAt: T + seq * 1_000,
      ...fields,
    });
}

const list = async (query: string, token = adminA): Promise<Page> => {
  const response = await api(`/api/v1/sessions${query}`, { token });
  expect(response.status, query).toBe(200);
  return response.json();
};
const ids = (page: Page) => page.items.map((item) => item.id);

beforeAll(async () => {
  tenantA = await createTenant("Sessions A");
  tenantB = await createTenant("Sessions B");
  adminA = (await userWithToken(tenantA, "admin")).accessToken;
  viewerA = (await userWithToken(tenantA, "viewer")).accessToken;
  adminB = (await userWithToken(tenantB, "admin")).accessToken;

  A.phoneActive = await seedSession(tenantA, { createdAt: T + 1_000, instructions: "Be brief." });
  A.webEnded = await seedSession(tenantA, {
    channel: "web",
    status: "ended",
    provider: "gemini",
    createdAt: T + 2_000,
    endedAt: T + 60_000,
  });
  A.phoneEnded = await seedSession(tenantA, { status: "ended", provider: "local", createdAt: T + 3_000, endedAt: T + 90_000 });
  A.webActive = await seedSession(tenantA, { channel: "web", createdAt: T + 4_000 });
  // Two sessions created in the same millisecond: pagination must neither skip nor repeat one.
  A.tieOne = await seedSession(tenantA, { provider: "deepgram", createdAt: T + 5_000 });
  A.tieTwo = await seedSession(tenantA, { provider: "deepgram", createdAt: T + 5_000 });

  await seedCall(tenantA, A.phoneActive, T + 1_000, "failed");
  latestCallOfPhone = await seedCall(tenantA, A.phoneActive, T + 1_500, "in_progress");
  // Inserted out of order; the API answers them by seq.
  for (const seq of [3, 1, 4, 2])
    await seedLine(tenantA, A.phoneActive, seq, seq === 2 ? { interrupted: true, itemId: "resp-2", provider: "gemini" } : {});

  sessionB = await seedSession(tenantB, { createdAt: T + 1_000 });
  await seedCall(tenantB, sessionB, T + 1_000, "completed");
  await seedLine(tenantB, sessionB, 1, { text: "tenant B's secret line" });
});

describe("GET /api/v1/sessions", () => {
  it("lists the tenant's sessions newest first, and only the tenant's", async () => {
    const page = await list("");
    const newestFirst = [A.tieOne, A.tieTwo].sort().reverse();
    expect(ids(page)).toEqual([...newestFirst, A.webActive, A.phoneEnded, A.webEnded, A.phoneActive]);
    expect(ids(page)).not.toContain(sessionB);
    expect(page.nextCursor).toBeNull();
    expect(page.items.find((item) => item.id === A.webEnded)).toEqual({
      id: A.webEnded,
      channel: "web",
      status: "ended",
      provider: "gemini",
      instructions: null,
      prompt: null,
      metadata: {},
      correlationId: expect.any(String),
      createdAt: new Date(T + 2_000).toISOString(),
      endedAt: new Date(T + 60_000).toISOString(),
    });
    expect(ids(await list("", adminB))).toEqual([sessionB]);
  });

  it("filters by status, channel, provider and time, alone and together", async () => {
    expect(ids(await list("?status=ended"))).toEqual([A.phoneEnded, A.webEnded]);
    expect(ids(await list("?channel=web"))).toEqual([A.webActive, A.webEnded]);
    expect(ids(await list("?provider=openai"))).toEqual([A.webActive, A.phoneActive]);
    expect(ids(await list("?channel=phone&status=active&provider=openai"))).toEqual([A.phoneActive]);
    const since = new Date(T + 2_000).toISOString();
    const until = new Date(T + 4_000).toISOString();
    expect(ids(await list(`?since=${since}&until=${until}`))).toEqual([A.webActive, A.phoneEnded, A.webEnded]);
    expect(ids(await list(`?until=${new Date(T + 1_000).toISOString()}`))).toEqual([A.phoneActive]);
    expect(ids(await list(`?since=${new Date(T + 999_999).toISOString()}`))).toEqual([]);
  });

  it("pages with limit and cursor without skipping or repeating", async () => {
    const all = ids(await list(""));
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Page = await list(`?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...ids(page));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(all);
    // Cursors compose with filters.
    const first = await list("?channel=web&limit=1");
    expect(ids(first)).toEqual([A.webActive]);
    expect(ids(await list(`?channel=web&limit=1&cursor=${first.nextCursor}`))).toEqual([A.webEnded]);
  });

  it("a viewer may read the list", async () => {
    expect(ids(await list("?status=ended", viewerA))).toEqual([A.phoneEnded, A.webEnded]);
  });

  it("rejects malformed filters with 400 and names the field", async () => {
    for (const query of [
      "?status=paused",
      "?channel=sms",
      "?provider=acme",
      "?since=yesterday",
      "?until=2031-13-01",
      "?limit=0",
      "?limit=101",
      "?limit=ten",
      "?colour=red",
    ]) {
      const response = await api(`/api/v1/sessions${query}`, { token: adminA });
      expect(response.status, query).toBe(400);
    }
    const bad = await api("/api/v1/sessions?status=paused", { token: adminA });
    const body = (await bad.json()) as { error: { code: string; details?: unknown } };
    expect(JSON.stringify(body.error.details)).toContain("status");
    const cursor = await api("/api/v1/sessions?cursor=not-a-cursor", { token: adminA });
    expect(cursor.status).toBe(400);
    expect((await errorOf(cursor)).code).toBe("invalid_cursor");
  });
});

describe("GET /api/v1/sessions/{id}", () => {
  it("answers the session with its latest call (as GET /calls/{id} shows it) and its transcript in order", async () => {
    const response = await api(`/api/v1/sessions/${A.phoneActive}`, { token: adminA });
    expect(response.status).toBe(200);
    const detail = (await response.json()) as SessionDetail;
    expect(detail).toMatchObject({
      id: A.phoneActive,
      channel: "phone",
      status: "active",
      provider: "openai",
      instructions: "Be brief.",
      endedAt: null,
    });
    expect(detail.createdAt).toBe(new Date(T + 1_000).toISOString());

    const callResponse = await api(`/api/v1/calls/${latestCallOfPhone}`, { token: adminA });
    const { events: _events, ...call } = (await callResponse.json()) as Record<string, unknown>;
    expect(detail.call).toEqual(call);
    expect(detail.call).toMatchObject({ id: latestCallOfPhone, sessionId: A.phoneActive, status: "in_progress" });

    expect(detail.transcript.map((line) => line.seq)).toEqual([1, 2, 3, 4]);
    expect(detail.transcript[1]).toEqual({
      seq: 2,
      role: "agent",
      text: "line 2",
      provider: "gemini",
      interrupted: true,
      at: new Date(T + 2_000).toISOString(),
    });
    expect(detail.transcript[0]).toMatchObject({ role: "caller", interrupted: false });
  });

  it("a session without a call or transcript answers call null and an empty transcript; a viewer may read it", async () => {
    const response = await api(`/api/v1/sessions/${A.webEnded}`, { token: viewerA });
    expect(response.status).toBe(200);
    const detail = (await response.json()) as SessionDetail;
    expect(detail.call).toBeNull();
    expect(detail.transcript).toEqual([]);
  });

  it("another tenant's session answers 404, exactly like a missing one", async () => {
    const foreign = await api(`/api/v1/sessions/${sessionB}`, { token: adminA });
    const missing = await api(`/api/v1/sessions/${crypto.randomUUID()}`, { token: adminA });
    expect(foreign.status).toBe(404);
    expect(missing.status).toBe(404);
    const [foreignError, missingError] = [await errorOf(foreign), await errorOf(missing)];
    expect(foreignError.code).toBe(missingError.code);
    expect(foreignError.message).toBe(missingError.message);
    // B still sees its own, with its line.
    const own = (await (await api(`/api/v1/sessions/${sessionB}`, { token: adminB })).json()) as SessionDetail;
    expect(own.transcript.map((line) => line.text)).toEqual(["tenant B's secret line"]);
  });

  it("a malformed id is a 400", async () => {
    for (const id of ["not-a-session", "00000000000000000000000000000000", `${crypto.randomUUID()}x`]) {
      expect((await api(`/api/v1/sessions/${id}`, { token: adminA })).status, id).toBe(400);
    }
  });

  it("answers the transcript the call's object drained to D1", async () => {
    const sessionId = await seedSession(tenantA, { createdAt: T + 7_000 });
    const stub = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(crypto.randomUUID()));
    const drained = await runInDurableObject(stub, async (_instance, state) => {
      const log = new TranscriptLog(state.storage.sql);
      log.append({ role: "caller", text: "I'd like to book a table", provider: "local", interrupted: false, itemId: null, at: T + 8_000 });
      log.append({ role: "agent", text: "For how many peo", provider: "local", interrupted: false, itemId: "r1", at: T + 9_000 });
      log.markInterrupted("r1");
      log.append({ role: "caller", text: "four", provider: "local", interrupted: false, itemId: null, at: T + 10_000 });
      return log.flush(env, tenantA, sessionId);
    });
    expect(drained).toBe("drained");
    const detail = (await (await api(`/api/v1/sessions/${sessionId}`, { token: adminA })).json()) as SessionDetail;
    expect(detail.transcript.map((line) => [line.seq, line.role, line.text, line.interrupted])).toEqual([
      [1, "caller", "I'd like to book a table", false],
      [2, "agent", "For how many peo", true],
      [3, "caller", "four", false],
    ]);
  });
});
