import { abortAllDurableObjects, applyD1Migrations, listDurableObjectIds, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll } from "vitest";

// Storage is isolated per test file; every file starts from the committed migrations.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);

/**
 * Each file's objects are stilled before its runtime closes. Every object invocation (an alarm, an RPC from a timer, a
 * socket's message) first asks the test runner to resolve the Worker's module; one that starts while the file's
 * runner is closing fails the run with "Closing rpc while "resolve" was pending" though every test passed. So every
 * object's alarm is cancelled, then every instance is reset, its timers and sockets with it. Registered first, this
 * hook runs after the files' own.
 */
afterAll(async () => {
  await Promise.all([
    cancelAlarms(env.CALL_SESSION),
    cancelAlarms(env.PROVIDER_HEALTH),
    cancelAlarms(env.TENANT_ADMISSION),
    cancelAlarms(env.METRICS),
    cancelAlarms(env.REMINDER_SCHEDULER),
  ]);
  await abortAllDurableObjects();
  // One object at a time: a file that made hundreds (reminders.test.ts wakes 200 tenants' schedulers) needs seconds.
}, 60_000);

async function cancelAlarms<T extends Rpc.DurableObjectBranded | undefined>(namespace: DurableObjectNamespace<T>): Promise<void> {
  for (const id of await listDurableObjectIds(namespace)) {
    await runInDurableObject(namespace.get(id), (_instance, state) => state.storage.deleteAlarm());
  }
}
