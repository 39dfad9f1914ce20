import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { AlarmSchedule } from "../../durable-objects/alarm-schedule.ts";

describe("the object's one alarm", () => {
  it("is only ever moved earlier, so one part's later retry never pushes back another's deadline", async () => {
    const stub = env.CALL_SESSION.get(env.CALL_SESSION.idFromName(`alarm-${crypto.randomUUID()}`));
    await runInDurableObject(stub, async (_instance, state) => {
      const schedule = new AlarmSchedule(state.storage);
      const now = Date.now();
      await schedule.wakeBy(now + 60_000);
      expect(await state.storage.getAlarm()).toBe(now + 60_000);
      await schedule.wakeBy(now + 120_000);
      expect(await state.storage.getAlarm()).toBe(now + 60_000);
      await schedule.wakeBy(now + 30_000);
      expect(await state.storage.getAlarm()).toBe(now + 30_000);
      await state.storage.deleteAlarm();
    });
  });
});
