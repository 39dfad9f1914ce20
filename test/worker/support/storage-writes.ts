import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";

/**
 * Watches a session object's storage API (every SQL statement that writes, every KV-API put/delete, put, delete,
 * setAlarm) and records each write with the stack it came from, so a test can say which paths may not write.
 */
export interface StorageWrite {
  what: string;
  stack: string;
}

const WRITE_SQL = /^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b/i;
const stubOf = (sessionId: string) => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(sessionId));

/** Wraps the object's storage methods; resolves once installed. `restore` puts the originals back. */
export async function watchStorage(sessionId: string): Promise<{ writes: StorageWrite[]; restore: () => void }> {
  const writes: StorageWrite[] = [];
  let restore = () => {};
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
  return { writes, restore };
}
