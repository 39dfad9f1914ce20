import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { eventually } from "./support/carriers.ts";
import { openStream, transcriptOf, twilioCallWith } from "./support/media-caller.ts";
import { putScenario, simulatorConnections, uniqueKey } from "./support/provider-simulator.ts";

/**
 * The regression guard for the call path: a Durable Object's storage write holds every outgoing message of the
 * object (agent audio to the caller, caller audio to the provider) until it is durable, so no write may be issued
 * from the per-frame audio path. The test watches the real object's storage API (every SQL statement that writes,
 * every KV-API put/delete, setAlarm) while a real call streams through the Worker, and records where each write
 * came from. It asserts on what was written and from where, never on time.
 */
const stubOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));
/** The per-frame functions: caller frame in (carrier socket → provider), agent chunk out (provider → carrier), marks. */
const PER_FRAME = /\b(callerAudio|forward|agentAudio|markPlayed|onAudio|sendAudio|toProvider|toCaller)\b/;
const WRITE_SQL = /^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b/i;

interface Write {
  what: string;
  stack: string;
}
const writes: Write[] = [];
let restore: (() => void) | null = null;

afterEach(() => {
  restore?.();
  restore = null;
  writes.length = 0;
});

/** Wraps the object's storage methods so each write is recorded with its stack; returns when installed. */
async function watchStorage(sessionId: string): Promise<void> {
  await runInDurableObject(stubOf(sessionId), (_instance, state) => {
    const storage = state.storage;
    const record = (what: string) => writes.push({ what, stack: new Error("storage write").stack ?? "" });
    const sql = storage.sql;
    const kv = storage.kv;
    const originals = {
      exec: sql.exec,
      kvPut: kv.put,
      kvDelete: kv.delete,
      put: storage.put,
      delete: storage.delete,
      setAlarm: storage.setAlarm,
    };
    sql.exec = function (this: SqlStorage, query: string, ...bindings: unknown[]) {
      if (WRITE_SQL.test(query)) record(query.trim().split(/\s+/).slice(0, 3).join(" "));
      return originals.exec.call(this, query, ...bindings);
    } as SqlStorage["exec"];
    kv.put = function (this: SyncKvStorage, key: string, value: unknown) {
      record(`kv.put ${key}`);
      return originals.kvPut.call(this, key, value);
    } as SyncKvStorage["put"];
    kv.delete = function (this: SyncKvStorage, key: string) {
      record(`kv.delete ${key}`);
      return originals.kvDelete.call(this, key);
    } as SyncKvStorage["delete"];
    storage.put = function (this: DurableObjectStorage, ...args: unknown[]) {
      record("put");
      return (originals.put as (...a: unknown[]) => unknown).apply(this, args);
    } as DurableObjectStorage["put"];
    storage.delete = function (this: DurableObjectStorage, ...args: unknown[]) {
      record("delete");
      return (originals.delete as (...a: unknown[]) => unknown).apply(this, args);
    } as DurableObjectStorage["delete"];
    storage.setAlarm = function (this: DurableObjectStorage, ...args: unknown[]) {
      record("setAlarm");
      return (originals.setAlarm as (...a: unknown[]) => unknown).apply(this, args);
    } as DurableObjectStorage["setAlarm"];
    // The components captured these objects when the object was built: the wrappers must sit on the same ones.
    expect(state.storage.sql).toBe(sql);
    restore = () => {
      Object.assign(sql, { exec: originals.exec });
      Object.assign(kv, { put: originals.kvPut, delete: originals.kvDelete });
      Object.assign(storage, { put: originals.put, delete: originals.delete, setAlarm: originals.setAlarm });
    };
  });
}

describe("storage writes and the audio path", () => {
  it("a whole conversation (caller turns, agent audio, marks, a barge-in) issues no storage write from the per-frame path", async () => {
    const key = uniqueKey("audio-path-writes");
    await putScenario(key, {
      replies: [
        "Of course. Your balance is one hundred and twenty dollars, and your next bill is due on the first of next month.",
        "Sure.",
      ],
    });
    const call = await twilioCallWith("openai", key);
    await eventually(async () => (await simulatorConnections(key)).length === 1);
    const caller = await openStream(call, 1);
    await caller.silence(200);
    await watchStorage(call.sessionId);

    // Pure audio both ways: frames in, no turn yet. Nothing may be written.
    await caller.silence(1_000);
    expect(writes.map((write) => write.what)).toEqual([]);

    // A turn, the agent's long reply streaming with its marks echoed, then the caller talking over it.
    await caller.say("hello");
    await caller.silence(700);
    await caller.until(() => caller.agentAudioBytes() >= 8_000);
    await caller.say("interrupt");
    await caller.silence(1_500);
    await transcriptOf(call.token, call.sessionId, (lines) => lines.some((line) => line.interrupted));
    expect(caller.count("clear")).toBeGreaterThan(0);
    expect(caller.count("mark")).toBeGreaterThan(0);

    // The turn's lasting facts (transcript lines, the interruption) were written, but never from a frame handler.
    expect(writes.length).toBeGreaterThan(0);
    const fromFramePath = writes.filter((write) => PER_FRAME.test(write.stack));
    expect(fromFramePath.map((write) => `${write.what}\n${write.stack}`)).toEqual([]);
  });
});
