import { sql } from "drizzle-orm";
import { tenantScopeFor } from "../../workers/db/tenant-scope";
import { callEvents, calls, sessions } from "../../workers/db/schema";
import type { CallEventRow, CallRecord } from "./call-store";

/**
 * Writes the call's current state and its new events to D1 in one batch (one transaction). Idempotent: the rows
 * are upserted, events are keyed by (call, seq), and an older state never overwrites a newer one.
 */
export async function syncToD1(env: Env, record: CallRecord, events: CallEventRow[]): Promise<void> {
  const scope = tenantScopeFor(env, record.tenantId);
  const ended = record.status === "completed" || record.status === "failed";
  const sessionRow = {
    id: record.sessionId,
    channel: "phone" as const,
    status: ended ? ("ended" as const) : ("active" as const),
    provider: record.provider,
    instructions: record.instructions,
    correlationId: record.correlationId,
    createdAt: record.createdAt,
    endedAt: ended ? record.endedAt : null,
  };
  const callRow = {
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
  };
  const { id: _sessionId, createdAt: _sessionCreated, ...sessionUpdate } = sessionRow;
  const { id: _callId, createdAt: _callCreated, ...callUpdate } = callRow;
  await scope.batch([
    scope.insert(sessions, sessionRow).onConflictDoUpdate({ target: sessions.id, set: sessionUpdate }),
    scope.insert(calls, callRow).onConflictDoUpdate({
      target: calls.id,
      set: callUpdate,
      setWhere: sql`${calls.updatedAt} <= excluded.updated_at`,
    }),
    ...events.map((event) =>
      scope
        .insert(callEvents, { id: `${record.callId}:${event.seq}`, callId: record.callId, ...event })
        .onConflictDoNothing(),
    ),
  ]);
}
