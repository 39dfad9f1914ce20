import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { DRAIN_BATCHES_PER_WAKE } from "../../../durable-objects/call/outbox-backlog.ts";
import { MAX_LINES_KEPT, MAX_TEXT_CHARS, type TranscriptLine, TranscriptLog } from "../../../durable-objects/call/transcript-log.ts";
import type { TurnRecord } from "../../../workers/shared/turn-timings.ts";
import { createTenant } from "../support/identity.ts";

/**
 * The transcript log runs inside a real call object (its SQLite storage) and drains to the real D1. A D1 outage is
 * simulated with a binding whose every call throws, as an unreachable database does.
 */
let tenantId: string;
let otherTenantId: string;

beforeAll(async () => {
  tenantId = await createTenant("Transcripts");
  otherTenantId = await createTenant("Other");
});

const freshObject = () => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(crypto.randomUUID()));
/** One log per object instance, as in production: what it holds in memory lasts as long as the instance. */
const logs = new WeakMap<object, TranscriptLog>();
const inLog = <T>(stub: DurableObjectStub, fn: (log: TranscriptLog) => T | Promise<T>) =>
  runInDurableObject(stub, (instance, state) => {
    const log = logs.get(instance) ?? new TranscriptLog(state.storage.sql);
    logs.set(instance, log);
    return fn(log);
  });
const storedLines = (stub: DurableObjectStub) =>
  runInDurableObject(stub, (_instance, state) =>
    state.storage.sql.exec<{ seq: number; text: string }>("SELECT seq, text FROM transcript_lines ORDER BY seq").toArray(),
  );

const line = (text: string, overrides: Partial<Omit<TranscriptLine, "seq">> = {}): Omit<TranscriptLine, "seq"> => ({
  role: "caller",
  text,
  provider: "local",
  interrupted: false,
  itemId: null,
  at: Date.now(),
  ...overrides,
});

const unavailable = () => {
  throw new Error("D1_ERROR: network connection lost");
};
const brokenD1 = {
  prepare: unavailable,
  batch: unavailable,
  exec: unavailable,
  dump: unavailable,
  withSession: unavailable,
} as unknown as D1Database;
const d1Down = { ...env, DB: brokenD1 } as Env;

type D1Line = {
  id: string;
  tenant_id: string;
  session_id: string;
  seq: number;
  role: string;
  text: string;
  provider: string;
  interrupted: number;
  item_id: string | null;
  occurred_at: number;
};
const d1Lines = async (sessionId: string) =>
  (await env.DB.prepare("SELECT * FROM transcript_lines WHERE session_id = ? ORDER BY seq").bind(sessionId).all<D1Line>()).results;

describe("transcript log in the object", () => {
  it("appends in order, recent() answers the latest lines oldest first, text is bounded", async () => {
    const stub = freshObject();
    await inLog(stub, (log) => {
      expect(log.recent(5)).toEqual([]);
      const first = log.append(line("hello", { at: 1_000 }));
      const second = log.append(line("hi, how can I help?", { role: "agent", provider: "openai", itemId: "item-1", at: 2_000 }));
      const third = log.append(line("x".repeat(MAX_TEXT_CHARS + 500), { at: 3_000 }));
      expect([first.seq, second.seq, third.seq]).toEqual([1, 2, 3]);
      expect(second).toEqual({
        seq: 2,
        role: "agent",
        text: "hi, how can I help?",
        provider: "openai",
        interrupted: false,
        itemId: "item-1",
        at: 2_000,
      });
      expect(third.text.length).toBe(MAX_TEXT_CHARS);
      expect(log.recent(2).map((l) => l.seq)).toEqual([2, 3]);
      expect(log.recent(10).map((l) => l.text.slice(0, 5))).toEqual(["hello", "hi, h", "xxxxx"]);
      expect(log.recent(0)).toEqual([]);
      expect(log.count()).toBe(3);
      expect(log.pendingCount()).toBe(3);
    });
  });

  it("markInterrupted marks the latest line with that item id and queues it again", async () => {
    const stub = freshObject();
    await inLog(stub, (log) => {
      log.append(line("first part", { role: "agent", itemId: "item-a" }));
      log.append(line("caller talks", { itemId: "item-b" }));
      log.append(line("second part", { role: "agent", itemId: "item-a" }));
      expect(log.markInterrupted("no-such-item")).toBeNull();
      expect(log.pendingCount()).toBe(3);

      const marked = log.markInterrupted("item-a");
      expect(marked).toMatchObject({ seq: 3, text: "second part", interrupted: true, itemId: "item-a" });
      expect(log.recent(3).map((l) => [l.seq, l.interrupted])).toEqual([
        [1, false],
        [2, false],
        [3, true],
      ]);
      expect(log.pendingCount()).toBe(4);
      // Already interrupted: answered, not queued again.
      expect(log.markInterrupted("item-a")).toMatchObject({ seq: 3, interrupted: true });
      expect(log.pendingCount()).toBe(4);
    });
  });

  it("keeps at most MAX_LINES_KEPT lines in the object while D1 receives every line in batches", async () => {
    const stub = freshObject();
    const sessionId = crypto.randomUUID();
    const total = MAX_LINES_KEPT + 60;
    await inLog(stub, async (log) => {
      for (let i = 1; i <= total; i++) log.append(line(`line ${i}`, { at: i }));
      expect(log.count()).toBe(MAX_LINES_KEPT);
      expect(log.recent(1)[0]!.seq).toBe(total);
      expect(log.recent(MAX_LINES_KEPT + 10)[0]!.seq).toBe(total - MAX_LINES_KEPT + 1);
      expect(log.pendingCount()).toBe(total);
      // Each flush sends at most DRAIN_BATCHES_PER_WAKE batches of 50 and says when more remain.
      const results = [];
      for (let i = 0; i < 5; i++) results.push(await log.flush(env, tenantId, sessionId));
      expect(results).toEqual(["more", "more", "more", "more", "drained"]);
      expect(DRAIN_BATCHES_PER_WAKE * 50 * 4).toBeLessThan(total);
      expect(log.pendingCount()).toBe(0);
      // The next line continues the numbering after pruning.
      expect(log.append(line("after")).seq).toBe(total + 1);
    });
    const rows = await d1Lines(sessionId);
    expect(rows.length).toBe(total);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  });
});

describe("draining to D1", () => {
  it("flush writes the lines to D1 with the tenant's id and empties the outbox", async () => {
    const stub = freshObject();
    const sessionId = crypto.randomUUID();
    const flushed = await inLog(stub, async (log) => {
      log.append(line("hello", { at: 1_700_000_000_000 }));
      log.append(line("hello, this is the agent", { role: "agent", provider: "gemini", itemId: "it-1", at: 1_700_000_001_000 }));
      log.append(line("transferring you", { role: "system" }));
      const result = await log.flush(env, tenantId, sessionId);
      return { result, pending: log.pendingCount() };
    });
    expect(flushed).toEqual({ result: "drained", pending: 0 });
    const rows = await d1Lines(sessionId);
    expect(rows.map((r) => [r.id, r.tenant_id, r.seq, r.role, r.provider])).toEqual([
      [`${sessionId}:1`, tenantId, 1, "caller", "local"],
      [`${sessionId}:2`, tenantId, 2, "agent", "gemini"],
      [`${sessionId}:3`, tenantId, 3, "system", "local"],
    ]);
    expect(rows[1]).toMatchObject({ text: "hello, this is the agent", interrupted: 0, item_id: "it-1", occurred_at: 1_700_000_001_000 });
    expect(rows[0]!.item_id).toBeNull();
    // Nothing was written under another tenant.
    const other = await env.DB.prepare("SELECT count(*) AS n FROM transcript_lines WHERE tenant_id = ?")
      .bind(otherTenantId)
      .first<{ n: number }>();
    expect(other!.n).toBe(0);
  });

  it("a line interrupted after it reached D1 is queued again and updated there", async () => {
    const stub = freshObject();
    const sessionId = crypto.randomUUID();
    await inLog(stub, async (log) => {
      log.append(line("let me tell you about", { role: "agent", itemId: "resp-1" }));
      expect(await log.flush(env, tenantId, sessionId)).toBe("drained");
    });
    expect((await d1Lines(sessionId)).map((r) => r.interrupted)).toEqual([0]);

    await inLog(stub, async (log) => {
      expect(log.markInterrupted("resp-1")).toMatchObject({ seq: 1, interrupted: true });
      expect(log.pendingCount()).toBe(1);
      expect(await log.flush(env, tenantId, sessionId)).toBe("drained");
    });
    const rows = await d1Lines(sessionId);
    expect(rows.length).toBe(1);
    expect(rows[0]).toMatchObject({ seq: 1, interrupted: 1, text: "let me tell you about" });
  });

  it("a line appended and interrupted before any flush lands once, interrupted", async () => {
    const stub = freshObject();
    const sessionId = crypto.randomUUID();
    await inLog(stub, async (log) => {
      log.append(line("one", { role: "agent", itemId: "r1" }));
      log.append(line("two"));
      log.markInterrupted("r1");
      expect(await log.flush(env, tenantId, sessionId)).toBe("drained");
    });
    expect((await d1Lines(sessionId)).map((r) => [r.seq, r.interrupted])).toEqual([
      [1, 1],
      [2, 0],
    ]);
  });

  it("when D1 fails, flush answers failed and keeps the outbox; the next flush delivers everything", async () => {
    const stub = freshObject();
    const sessionId = crypto.randomUUID();
    await inLog(stub, async (log) => {
      for (let i = 1; i <= 3; i++) log.append(line(`during outage ${i}`, { role: i % 2 ? "caller" : "agent", itemId: `i${i}` }));
      expect(await log.flush(d1Down, tenantId, sessionId)).toBe("failed");
      expect(log.pendingCount()).toBe(3);
      // Lines keep arriving while D1 is down; an interruption is queued too.
      log.append(line("still talking"));
      log.markInterrupted("i2");
      expect(await log.flush(d1Down, tenantId, sessionId)).toBe("failed");
      expect(log.pendingCount()).toBe(5);
      expect(log.count()).toBe(4);
    });
    expect(await d1Lines(sessionId)).toEqual([]);

    await inLog(stub, async (log) => {
      expect(await log.flush(env, tenantId, sessionId)).toBe("drained");
      expect(log.pendingCount()).toBe(0);
    });
    expect((await d1Lines(sessionId)).map((r) => [r.seq, r.interrupted])).toEqual([
      [1, 0],
      [2, 1],
      [3, 0],
      [4, 0],
    ]);
  });

  it("concurrent flushes run one at a time and write each line once", async () => {
    const stub = freshObject();
    const sessionId = crypto.randomUUID();
    await inLog(stub, async (log) => {
      for (let i = 1; i <= 120; i++) log.append(line(`l${i}`));
      const first = log.flush(env, tenantId, sessionId);
      log.append(line("late"));
      const second = log.flush(env, tenantId, sessionId);
      expect(await Promise.all([first, second])).toEqual(["drained", "drained"]);
      expect(log.pendingCount()).toBe(0);
    });
    const rows = await d1Lines(sessionId);
    expect(rows.length).toBe(121);
    expect(rows.at(-1)).toMatchObject({ seq: 121, text: "late" });
  });

  it("lines are written behind: none reaches storage before a flush, all of them in the flush's one commit", async () => {
    const stub = freshObject();
    const sessionId = crypto.randomUUID();
    await inLog(stub, (log) => {
      log.append(line("said", { itemId: "w1" }));
      log.append(line("answered", { role: "agent", itemId: "w2" }));
      log.markInterrupted("w2");
      expect(log.recent(5).map((l) => [l.seq, l.interrupted])).toEqual([
        [1, false],
        [2, true],
      ]);
      expect(log.count()).toBe(2);
    });
    expect(await storedLines(stub)).toEqual([]);
    await inLog(stub, async (log) => expect(await log.flush(env, tenantId, sessionId)).toBe("drained"));
    expect((await storedLines(stub)).map((row) => row.text)).toEqual(["said", "answered"]);
    expect((await d1Lines(sessionId)).map((r) => [r.seq, r.interrupted])).toEqual([
      [1, 0],
      [2, 1],
    ]);
  });

  it("what a flush wrote survives eviction; an entry D1 accepted but not yet deleted is sent again, harmlessly", async () => {
    const stub = freshObject();
    const sessionId = crypto.randomUUID();
    await inLog(stub, async (log) => {
      log.append(line("before eviction 1", { itemId: "e1" }));
      log.append(line("before eviction 2", { role: "agent", itemId: "e2" }));
      expect(await log.flush(env, tenantId, sessionId)).toBe("drained");
      // Accepted by D1: its outbox entries are deleted by the next flush's commit, which an eviction pre-empts.
      expect(log.pendingCount()).toBe(0);
    });
    await evictDurableObject(stub);

    await inLog(stub, async (log) => {
      expect(log.recent(10).map((l) => [l.seq, l.text])).toEqual([
        [1, "before eviction 1"],
        [2, "before eviction 2"],
      ]);
      expect(log.pendingCount()).toBe(2);
      expect(log.markInterrupted("e2")).toMatchObject({ seq: 2, interrupted: true });
      expect(log.append(line("after eviction")).seq).toBe(3);
      expect(await log.flush(env, tenantId, sessionId)).toBe("drained");
      expect(log.pendingCount()).toBe(0);
    });
    expect((await d1Lines(sessionId)).map((r) => [r.seq, r.interrupted])).toEqual([
      [1, 0],
      [2, 1],
      [3, 0],
    ]);
  });

  it("a finished turn rides the lines' outbox: nothing stored before a flush, kept through a D1 outage, sent again after an eviction and written once", async () => {
    const stub = freshObject();
    const sessionId = crypto.randomUUID();
    const turn: TurnRecord = {
      provider: "openai",
      itemId: "item-t1",
      callerStoppedAt: 1_000,
      providerFirstAudioAt: 1_600,
      firstFrameSentAt: 1_600,
      firstMarkHeardAt: 1_800,
      interrupted: false,
    };
    const outbox = () =>
      runInDurableObject(
        stub,
        (_instance, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM transcript_outbox").one().n,
      );
    const d1Turns = async () =>
      (await env.DB.prepare("SELECT * FROM turn_timings WHERE session_id = ?").bind(sessionId).all<Record<string, unknown>>()).results;
    await inLog(stub, (log) => {
      log.append(line("answered", { role: "agent", provider: "openai", itemId: "item-t1" }));
      log.recordTurn(turn);
      expect(log.hasWork()).toBe(true);
      expect(log.pendingCount()).toBe(2);
    });
    expect(await outbox()).toBe(0);
    await inLog(stub, async (log) => expect(await log.flush(d1Down, tenantId, sessionId)).toBe("failed"));
    expect(await outbox()).toBe(2);
    expect(await d1Turns()).toEqual([]);

    await inLog(stub, async (log) => expect(await log.flush(env, tenantId, sessionId)).toBe("drained"));
    // Accepted, not yet deleted: an eviction now sends it again.
    await evictDurableObject(stub);
    await inLog(stub, async (log) => {
      expect(log.pendingCount()).toBe(2);
      expect(await log.flush(env, tenantId, sessionId)).toBe("drained");
    });
    expect(await d1Turns()).toEqual([
      {
        id: `${sessionId}:1600:item-t1`,
        tenant_id: tenantId,
        session_id: sessionId,
        provider: "openai",
        item_id: "item-t1",
        caller_stopped_at: 1_000,
        provider_first_audio_at: 1_600,
        first_frame_sent_at: 1_600,
        first_mark_heard_at: 1_800,
        interrupted: 0,
      },
    ]);
  });
});
