import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { encodeMulaw } from "../../../durable-objects/media/audio/g711.ts";
import { encodeBase64 } from "../../../durable-objects/media/audio/pcm16.ts";
import { CallerTurns } from "../../../durable-objects/voice/caller-turns.ts";
import { CircuitBreakers, DEFAULT_BREAKER_POLICY } from "../../../durable-objects/voice/circuit-breaker.ts";
import { Playback } from "../../../durable-objects/voice/playback.ts";
import { ReorderWindow } from "../../../workers/carriers/reorder-window.ts";
import { createLogger } from "../../../workers/shared/logger.ts";
import { type CapturedLogs, captureLogs } from "../support/logs.ts";

/** The pieces of the voice path that decide alone: Telnyx reordering, playback, caller turns, the circuit breaker. */
describe("the reorder window for Telnyx audio", () => {
  const collect = () => {
    const delivered: string[] = [];
    return { delivered, window: new ReorderWindow(3, (payload) => delivered.push(payload)) };
  };

  it("delivers frames in chunk order, waiting up to three frames for a late one", () => {
    const { delivered, window } = collect();
    for (const chunk of [1, 2, 4, 5, 3, 6]) window.push(chunk, `f${chunk}`);
    expect(delivered).toEqual(["f1", "f2", "f3", "f4", "f5", "f6"]);
    expect(window.skipped).toBe(0);
  });

  it("gives up a gap that does not fill, and drops stragglers and duplicates", () => {
    const { delivered, window } = collect();
    for (const chunk of [1, 3, 4, 5, 6]) window.push(chunk, `f${chunk}`);
    expect(delivered).toEqual(["f1", "f3", "f4", "f5", "f6"]);
    expect(window.skipped).toBe(1);
    window.push(2, "late");
    window.push(6, "again");
    expect(delivered).toHaveLength(5);
    expect(window.dropped).toBe(2);
  });

  it("passes frames without a chunk number straight through", () => {
    const { delivered, window } = collect();
    window.push(undefined, "a");
    window.push(undefined, "b");
    expect(delivered).toEqual(["a", "b"]);
  });
});

describe("a provider's circuit breaker", () => {
  const inObject = <T>(run: (sql: SqlStorage) => T) =>
    runInDurableObject(env.CALL_SESSION.get(env.CALL_SESSION.idFromName(crypto.randomUUID())), (_instance, state) =>
      run(state.storage.sql),
    );
  const log = () => createLogger({ correlationId: "breaker-test", sessionId: "s-1", tenantId: "t-1" });
  let logs: CapturedLogs;
  beforeEach(() => {
    logs = captureLogs();
  });
  const breakerEvents = () =>
    logs
      .all()
      .filter((line) => line.event.startsWith("breaker."))
      .map(({ ts: _ts, level: _level, correlationId: _c, tenantId: _t, ...rest }) => rest);

  it("opens after 5 consecutive failures, half-opens after 60 s with 3 trials, closes after 2 successes", async () => {
    await inObject((sql) => {
      const breakers = new CircuitBreakers(sql, DEFAULT_BREAKER_POLICY, log);
      const t0 = 1_000_000;
      for (let i = 0; i < 4; i++) expect(breakers.failure("openai", t0)).toBe("closed");
      breakers.success("openai", t0); // a success resets the count
      for (let i = 0; i < 4; i++) breakers.failure("openai", t0);
      expect(breakers.failure("openai", t0)).toBe("open");
      expect(breakers.tryAcquire("openai", t0 + 59_999)).toBe(false);
      expect(breakers.tryAcquire("gemini", t0)).toBe(true); // one breaker per provider
      const later = t0 + 60_000;
      expect(breakers.state("openai", later).state).toBe("half_open");
      expect([1, 2, 3, 4].map(() => breakers.tryAcquire("openai", later))).toEqual([true, true, true, false]);
      expect(breakers.success("openai", later)).toBe("half_open");
      expect(breakers.success("openai", later)).toBe("closed");
      expect(breakers.tryAcquire("openai", later)).toBe(true);
    });
    // Each change once, on the session's logger; the time-made half-open change when it is first acted on.
    expect(breakerEvents()).toEqual([
      { event: "breaker.opened", provider: "openai", consecutiveFailures: 5, openMs: 60_000, sessionId: "s-1" },
      { event: "breaker.half_open", provider: "openai", trials: 3, sessionId: "s-1" },
      { event: "breaker.closed", provider: "openai", sessionId: "s-1" },
    ]);
  });

  it("opens again on a failure while half-open, and keeps its counters across a restart", async () => {
    await inObject((sql) => {
      const t0 = 5_000_000;
      const first = new CircuitBreakers(sql, DEFAULT_BREAKER_POLICY, log);
      for (let i = 0; i < 5; i++) first.failure("deepgram", t0);
      expect(first.tryAcquire("deepgram", t0 + 60_000)).toBe(true);
      expect(first.failure("deepgram", t0 + 60_000)).toBe("open");
      first.failure("gemini", t0);
      first.failure("gemini", t0);
      // A new instance over the same storage (the object restarted) sees the same states.
      const restarted = new CircuitBreakers(sql, DEFAULT_BREAKER_POLICY, log);
      expect(restarted.state("deepgram", t0 + 60_001)).toMatchObject({ state: "open", openedAt: t0 + 60_000 });
      expect(restarted.state("gemini", t0).consecutiveFailures).toBe(2);
      expect(restarted.reopensAt("deepgram")).toBe(t0 + 120_000);
    });
    expect(breakerEvents().map((line) => `${line.event}:${String(line.provider)}`)).toEqual([
      "breaker.opened:deepgram",
      "breaker.half_open:deepgram",
      "breaker.opened:deepgram",
    ]);
  });
});

describe("the object's own view of caller turns", () => {
  const PCMU = { encoding: "pcmu", sampleRate: 8000 } as const;
  const frame = (amplitude: number) => {
    const samples = Int16Array.from({ length: 160 }, (_, i) => Math.round(amplitude * Math.sin((2 * Math.PI * 300 * i) / 8000)));
    const codes = new Uint8Array(160);
    encodeMulaw(samples, codes);
    return encodeBase64(codes);
  };
  const feed = (turns: CallerTurns, base64: string, frames: number) => Array.from({ length: frames }, () => turns.push(base64, PCMU));

  it("ends a turn once: speech, then a second of silence", () => {
    const turns = new CallerTurns();
    expect(feed(turns, frame(8000), 25).some(Boolean)).toBe(false);
    const silence = feed(turns, frame(0), 60);
    expect(silence.filter(Boolean)).toHaveLength(1);
    expect(silence.indexOf(true)).toBe(49); // the 50th silent frame completes the second
  });

  it("ignores clicks shorter than 200 ms and line noise", () => {
    const turns = new CallerTurns();
    expect(feed(turns, frame(8000), 5).some(Boolean)).toBe(false);
    expect(feed(turns, frame(0), 100).some(Boolean)).toBe(false);
    expect(feed(turns, frame(50), 200).some(Boolean)).toBe(false);
    expect(turns.push("not base64!", PCMU)).toBe(false);
  });

  it("reads the bytes it is given as the frame's, without decoding the payload again", () => {
    const turns = new CallerTurns();
    const speechBytes = Uint8Array.from(atob(frame(8000)), (char) => char.charCodeAt(0));
    // The payload says silence; the bytes handed along with it (the carrier stream's decoding) are speech.
    const spoken = Array.from({ length: 25 }, () => turns.push(frame(0), PCMU, speechBytes));
    expect(spoken.some(Boolean)).toBe(false);
    const silence = feed(turns, frame(0), 60);
    expect(silence.indexOf(true)).toBe(49);
  });
});

describe("what the caller heard of the agent's reply", () => {
  it("is the largest mark the carrier echoed, and a barge-in interrupts at exactly that", () => {
    const playback = new Playback(() => true);
    expect([playback.sent("item-1", 40), playback.sent("item-1", 40), playback.sent("item-1", 40)]).toEqual([
      "item-1@40",
      "item-1@80",
      "item-1@120",
    ]);
    expect(playback.audible()).toBe(true);
    playback.markPlayed("item-1@40");
    playback.markPlayed("item-1@80");
    playback.markPlayed("other@500"); // another item's mark changes nothing
    playback.markPlayed("item-1@oops");
    expect(playback.interrupt()).toEqual({ itemId: "item-1", heardMs: 80 });
    expect(playback.isInterrupted("item-1")).toBe(true);
    expect(playback.audible()).toBe(false);
    expect(playback.interrupt()).toBeNull();
  });

  it("stays interrupted for a reply cut off earlier, even while its late chunks are the ones sent", () => {
    const playback = new Playback(() => true);
    playback.sent("item-4", 40);
    expect(playback.isInterrupted("item-4")).toBe(false);
    expect(playback.interrupt()).toEqual({ itemId: "item-4", heardMs: 0 });
    const mark = playback.sent("item-4", 40);
    expect(playback.isInterrupted("item-4")).toBe(true);
    expect(playback.markPlayed(mark)).toBe(false);
    playback.sent("item-5", 40);
    expect(playback.isInterrupted("item-5")).toBe(false);
    expect(playback.isInterrupted("item-4")).toBe(true);
    expect(playback.markPlayed("item-5@40")).toBe(true);
  });

  it("is over once every mark came back: nothing to interrupt", () => {
    const playback = new Playback(() => true);
    playback.markPlayed(playback.sent("item-2", 100));
    expect(playback.audible()).toBe(false);
    expect(playback.interrupt()).toBeNull();
  });

  it("is estimated from the time since the first chunk for a leg that echoes no marks", () => {
    const playback = new Playback(() => false);
    const start = Date.now();
    playback.sent("item-3", 5_000, start);
    const heard = playback.interrupt()!;
    expect(heard.itemId).toBe("item-3");
    expect(heard.heardMs).toBeGreaterThanOrEqual(0);
    expect(heard.heardMs).toBeLessThanOrEqual(Date.now() - start);
  });
});
