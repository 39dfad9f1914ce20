import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { SharedD1Batch } from "../../../workers/shared/db/shared-batch.ts";
import { metrics } from "../../../workers/shared/observability/metrics.ts";

/**
 * The call object's shared D1 batch (workers/shared/db/shared-batch.ts) against the real D1: what a part asks
 * for lands whether it went alone or with others, and one part's failing statement never holds back another's.
 */
const insert = (id: string) => env.DB.prepare("INSERT INTO shared_batch_probe (id) VALUES (?)").bind(id);
const stored = async (ids: string[]) =>
  (
    await env.DB.prepare(`SELECT id FROM shared_batch_probe WHERE id IN (${ids.map(() => "?").join(", ")}) ORDER BY id`)
      .bind(...ids)
      .all<{ id: string }>()
  ).results.map((row) => row.id);

beforeAll(async () => {
  await env.DB.exec("CREATE TABLE IF NOT EXISTS shared_batch_probe (id TEXT PRIMARY KEY)");
});

describe("the call object's shared D1 batch", () => {
  it("sends gathered parts together, each resolved once its writes are in", async () => {
    const batch = new SharedD1Batch(env);
    const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
    batch.gather(2);
    await Promise.all([batch.run([insert(`${a}-1`), insert(`${a}-2`)]), batch.run([insert(b)])]);
    expect(await stored([`${a}-1`, `${a}-2`, b])).toEqual([`${a}-1`, `${a}-2`, b].sort());
  });

  it("sends a failing part again alone: it is refused, the other part's writes land", async () => {
    const batch = new SharedD1Batch(env);
    const [kept, taken] = [crypto.randomUUID(), crypto.randomUUID()];
    await batch.run([insert(taken)]);
    batch.gather(2);
    const results = await Promise.allSettled([batch.run([insert(kept)]), batch.run([insert(taken)])]);
    expect(results.map((result) => result.status)).toEqual(["fulfilled", "rejected"]);
    expect(await stored([kept, taken])).toEqual([kept, taken].sort());
  });

  it("does not wait past the next task for a gathered part that never comes, and sends at once when not gathering", async () => {
    const batch = new SharedD1Batch(env);
    const [alone, after] = [crypto.randomUUID(), crypto.randomUUID()];
    batch.gather(2);
    await batch.run([insert(alone)]);
    await batch.run([insert(after)]);
    expect(await stored([alone, after])).toEqual([alone, after].sort());
  });

  it("is timed as every D1 round trip is: one `batch` observation per batch sent", async () => {
    const batches = () => metrics.histogram("d1_query_duration_seconds", { op: "batch" }).count;
    const batch = new SharedD1Batch(env);
    const before = batches();
    await batch.run([insert(crypto.randomUUID())]);
    expect(batches()).toBe(before + 1);
    batch.gather(2);
    await Promise.all([batch.run([insert(crypto.randomUUID())]), batch.run([insert(crypto.randomUUID())])]);
    expect(batches()).toBe(before + 2);
  });
});
