import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { RememberedKv } from "../../durable-objects/remembered-kv.ts";

const stub = () => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(`remembered-kv-${crypto.randomUUID()}`));

/** The object's real KV storage, its reads counted. */
function countingReads(kv: SyncKvStorage): { kv: SyncKvStorage; reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    kv: {
      get: <T>(key: string) => {
        reads.push(key);
        return kv.get<T>(key);
      },
      put: (key, value) => kv.put(key, value),
      delete: (key) => kv.delete(key),
      list: (options) => kv.list(options),
    },
  };
}

describe("the object's KV storage, reads remembered", () => {
  it("reads no key at all when the object started with nothing stored, and stores what it is given", async () => {
    await runInDurableObject(stub(), (_instance, state) => {
      for (const [key] of state.storage.kv.list()) state.storage.kv.delete(key);
      const { kv, reads } = countingReads(state.storage.kv);
      const remembered = new RememberedKv(kv);
      expect(remembered.get("deadline")).toBeUndefined();
      remembered.put("deadline", 42);
      expect(remembered.get("deadline")).toBe(42);
      expect(reads).toEqual([]);
      // Stored for real: another reader (the next instance) finds it.
      expect(state.storage.kv.get("deadline")).toBe(42);
      expect(remembered.delete("deadline")).toBe(true);
      expect(remembered.get("deadline")).toBeUndefined();
      expect(state.storage.kv.get("deadline")).toBeUndefined();
    });
  });

  it("reads each key once when the object started with something stored (a restart), never again", async () => {
    await runInDurableObject(stub(), (_instance, state) => {
      state.storage.kv.put("settings", { mask: "on" });
      const { kv, reads } = countingReads(state.storage.kv);
      const remembered = new RememberedKv(kv);
      expect(remembered.get("settings")).toEqual({ mask: "on" });
      expect(remembered.get("settings")).toEqual({ mask: "on" });
      expect(remembered.get("absent")).toBeUndefined();
      expect(remembered.get("absent")).toBeUndefined();
      expect(reads).toEqual(["settings", "absent"]);
    });
  });

  it("hands out copies: a caller changing what it got changes nothing stored or remembered", async () => {
    await runInDurableObject(stub(), (_instance, state) => {
      const remembered = new RememberedKv(state.storage.kv);
      const given = { mask: "on" };
      remembered.put("settings", given);
      given.mask = "off";
      const got = remembered.get<{ mask: string }>("settings")!;
      got.mask = "changed";
      expect(remembered.get("settings")).toEqual({ mask: "on" });
      expect(state.storage.kv.get("settings")).toEqual({ mask: "on" });
    });
  });

  it("after storage was wiped (a privacy erasure), knows nothing is stored", async () => {
    await runInDurableObject(stub(), async (_instance, state) => {
      state.storage.kv.put("settings", { mask: "on" });
      const { kv, reads } = countingReads(state.storage.kv);
      const remembered = new RememberedKv(kv);
      expect(remembered.get("settings")).toEqual({ mask: "on" });
      await state.storage.deleteAll();
      remembered.forgetAll();
      expect(remembered.get("settings")).toBeUndefined();
      expect(remembered.get("other")).toBeUndefined();
      expect(reads).toEqual(["settings"]);
    });
  });
});
