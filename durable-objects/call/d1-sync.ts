import { type Column, sql } from "drizzle-orm";
import { CompiledWrite } from "../../workers/shared/db/compiled-write.ts";
import { callEvents, calls, sessions } from "../../workers/shared/db/schema.ts";
import type { StatementRunner } from "../../workers/shared/db/shared-batch.ts";
import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import type { CallEventRow, CallRecord } from "./call-store.ts";

/** The value a conflicting insert proposed for this column (SQLite's `excluded`). */
const excluded = (column: Column) => sql`excluded.${sql.identifier(column.name)}`;

// The prompt columns are written by the insert only: a session's prompt version is fixed at its start.
const upsertSession = new CompiledWrite<
  "id" | "status" | "provider" | "instructions" | "promptId" | "promptVersion" | "correlationId" | "createdAt" | "endedAt"
>((db, value, tenant) =>
  db
    .insert(sessions)
    .values({
      id: value("id"),
      tenantId: tenant,
      channel: "phone",
      status: value("status"),
      provider: value("provider"),
      instructions: value("instructions"),
      promptId: value("promptId"),
      promptVersion: value("promptVersion"),
      correlationId: value("correlationId"),
      createdAt: value("createdAt"),
      endedAt: value("endedAt"),
    })
    .onConflictDoUpdate({
      target: sessions.id,
      set: {
        status: excluded(sessions.status),
        provider: excluded(sessions.provider),
        instructions: excluded(sessions.instructions),
        correlationId: excluded(sessions.correlationId),
        endedAt: excluded(sessions.endedAt),
      },
    }),
);

type CallColumn =
  | "id"
  | "sessionId"
  | "carrier"
  | "carrierCallId"
  | "direction"
  | "fromNumber"
  | "toNumber"
  | "status"
  | "failureReason"
  | "answeredAt"
  | "endedAt"
  | "createdAt"
  | "updatedAt"
  | "machineDetection"
  | "answeredBy"
  | "machineOutcome"
  | "voicemailChars"
  | "voicemailSha256";
/** Every column but the key and the creation time is the latest state's. */
const CALL_UPDATED = [
  "sessionId",
  "carrier",
  "carrierCallId",
  "direction",
  "fromNumber",
  "toNumber",
  "status",
  "failureReason",
  "answeredAt",
  "endedAt",
  "updatedAt",
  "machineDetection",
  "answeredBy",
  "machineOutcome",
  "voicemailChars",
  "voicemailSha256",
] as const;

const upsertCall = new CompiledWrite<CallColumn>((db, value, tenant) =>
  db
    .insert(calls)
    .values({
      id: value("id"),
      tenantId: tenant,
      sessionId: value("sessionId"),
      carrier: value("carrier"),
      carrierCallId: value("carrierCallId"),
      direction: value("direction"),
      fromNumber: value("fromNumber"),
      toNumber: value("toNumber"),
      status: value("status"),
      failureReason: value("failureReason"),
      answeredAt: value("answeredAt"),
      endedAt: value("endedAt"),
      createdAt: value("createdAt"),
      updatedAt: value("updatedAt"),
      machineDetection: value("machineDetection"),
      answeredBy: value("answeredBy"),
      machineOutcome: value("machineOutcome"),
      voicemailChars: value("voicemailChars"),
      voicemailSha256: value("voicemailSha256"),
    })
    .onConflictDoUpdate({
      target: calls.id,
      set: Object.fromEntries(CALL_UPDATED.map((name) => [name, excluded(calls[name])])),
      // An older state never overwrites a newer one (two flushes cannot race, but a restored object could).
      setWhere: sql`${calls.updatedAt} <= excluded.updated_at`,
    }),
);

const insertEvent = new CompiledWrite<"id" | "callId" | keyof CallEventRow>((db, value, tenant) =>
  db
    .insert(callEvents)
    .values({
      id: value("id"),
      tenantId: tenant,
      callId: value("callId"),
      seq: value("seq"),
      source: value("source"),
      event: value("event"),
      fromStatus: value("fromStatus"),
      toStatus: value("toStatus"),
      outcome: value("outcome"),
      carrierSequence: value("carrierSequence"),
      carrierTimestamp: value("carrierTimestamp"),
      detail: value("detail"),
      occurredAt: value("occurredAt"),
    })
    .onConflictDoNothing(),
);

/**
 * Writes the call's current state and its new events to D1 in one batch (one transaction; `writes`: the object's
 * shared batch, which may carry other parts' writes of the same moment too). Idempotent: the rows are upserted,
 * events are keyed by (call, seq), and an older state never overwrites a newer one.
 */
export async function syncToD1(env: Env, record: CallRecord, events: CallEventRow[], writes?: StatementRunner): Promise<void> {
  const ended = record.status === "completed" || record.status === "failed";
  const amd = record.amd ?? null;
  // Only a voicemail left is described (its length and digest; its text stays in the call's object).
  const voicemail = amd?.outcome === "voicemail_left" ? amd.digest : null;
  const scope = tenantScopeFor(env, record.tenantId);
  await (writes ?? scope).run([
    scope.bound(upsertSession, {
      id: record.sessionId,
      status: ended ? "ended" : "active",
      provider: record.provider,
      instructions: record.instructions,
      promptId: record.prompt?.id ?? null,
      promptVersion: record.prompt?.version ?? null,
      correlationId: record.correlationId,
      createdAt: record.createdAt,
      endedAt: ended ? record.endedAt : null,
    }),
    scope.bound(upsertCall, {
      id: record.callId,
      sessionId: record.sessionId,
      carrier: record.carrier,
      carrierCallId: record.carrierCallId,
      direction: record.direction,
      fromNumber: record.from,
      toNumber: record.to,
      status: record.status,
      failureReason: record.failureReason,
      answeredAt: record.answeredAt,
      endedAt: record.endedAt,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
      machineDetection: amd?.mode ?? null,
      answeredBy: amd?.answeredBy ?? null,
      machineOutcome: amd?.outcome ?? null,
      voicemailChars: voicemail?.chars ?? null,
      voicemailSha256: voicemail?.sha256 ?? null,
    }),
    ...events.map((event) => scope.bound(insertEvent, { id: `${record.callId}:${event.seq}`, callId: record.callId, ...event })),
  ]);
}
