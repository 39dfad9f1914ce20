import { eq, inArray, isNotNull, like, not, or, type SQL, sql } from "drizzle-orm";
import { BusinessCache, CACHE_LIFETIMES_SECONDS, type CacheKind } from "../business/cache.ts";
import { auditStatement } from "../identity/audit.ts";
import { forgetCarrierCall } from "../shared/db/directory.ts";
import {
  auditLog,
  callEvents,
  callReconcile,
  calls,
  customers,
  erasureRequests,
  idempotencyKeys,
  idempotencyWrites,
  invoiceItems,
  invoices,
  ledgerEntries,
  providerSwitches,
  recordings,
  reminders,
  sessionAnalysis,
  sessionEscalations,
  sessions,
  transcriptLines,
  turnTimings,
  whatsappMessages,
} from "../shared/db/schema.ts";
import { type TenantScope, tenantScopeFor } from "../shared/db/tenant-scope.ts";
import { callObject } from "../shared/session-ids.ts";
import { conversationStateKey } from "../whatsapp/conversation.ts";
import type { ErasureRow } from "./erasure-request.ts";
import { callsOfPhones, messagesOf, waIdOf } from "./export.ts";
import { deleteRecordings } from "./recording-objects.ts";

/**
 * The sweep of a confirmed erasure: every row, recording and cache entry about the person, step by step. The
 * request's `step` is the next step to run and is written as each one finishes; every step deletes what is still
 * there (deleting what is already gone is nothing), so a sweep cut off anywhere — the confirming request dying, a
 * D1 error — is finished by the next run (the cron, workers/scheduled.ts) with nothing skipped and nothing doubled.
 * Each run spends a bounded number of D1 batches; the rest waits for the next run.
 *
 * Within a step, the stores outside D1 (R2 recordings, KV entries) are deleted before the D1 rows that name them, so
 * a cut-off run never leaves an object whose only reference was already deleted.
 */
type StepOutcome = "done" | "more" | "waiting";
interface Sweep {
  env: Env;
  scope: TenantScope;
  request: ErasureRow;
  phones: string[];
  customerIds: string[];
  /** D1 batches (or KV pages) this run may still spend. */
  budget: { left: number };
}

/** D1 batches one run spends at most (the confirming request's, or one cron run's share). */
export const SWEEP_BATCHES = 40;
/** Calls (with their sessions) deleted per D1 batch: their ids bind well under D1's 100 parameters. */
const CALLS_PER_BATCH = 20;
/** KV keys listed (and deleted) per page of the cache step. */
const KV_PAGE = 100;

const STEPS: ReadonlyArray<(sweep: Sweep) => Promise<StepOutcome>> = [
  eraseCalls,
  eraseIdempotency,
  eraseCustomers,
  eraseMessages,
  eraseCache,
];

/**
 * Runs the request's sweep from its current step. `done` once everything is deleted (the request then forgets the
 * person's numbers and ids and the audit log records the erasure); `sweeping` when this run stopped early (budget
 * spent, or one of the person's calls still live) and the cron will carry on.
 */
export async function runSweep(env: Env, tenantId: string, requestId: string, batches = SWEEP_BATCHES): Promise<"done" | "sweeping"> {
  const scope = tenantScopeFor(env, tenantId);
  const byId = eq(erasureRequests.id, requestId);
  const [request] = (await scope.select(erasureRequests, byId).limit(1)) as ErasureRow[];
  if (request?.status === "done") return "done";
  if (request?.status !== "sweeping") throw new Error(`erasure ${requestId} is not being swept`);
  const targets = request.targets ?? { phones: [], customerIds: [] };
  // Customers given this number since the request was made are the same person's.
  const sameNumber =
    targets.phones.length === 0
      ? []
      : await scope.selectFields(customers, { id: customers.id }, inArray(customers.phone, targets.phones)).limit(50);
  const sweep: Sweep = {
    env,
    scope,
    request,
    phones: targets.phones,
    customerIds: [...new Set([...targets.customerIds, ...sameNumber.map((row) => row.id)])],
    budget: { left: batches },
  };
  for (let step = request.step; step < STEPS.length; step++) {
    if ((await STEPS[step]!(sweep)) !== "done") return "sweeping";
    await scope.update(erasureRequests, { step: step + 1, updatedAt: Date.now() }, byId, eq(erasureRequests.status, "sweeping"));
  }
  const now = Date.now();
  const [finished] = await scope
    .update(
      erasureRequests,
      { status: "done", targets: null, completedAt: now, updatedAt: now },
      byId,
      eq(erasureRequests.status, "sweeping"),
    )
    .returning({ id: erasureRequests.id });
  // Only the run that finished it records it, so two runs racing to the end write one entry.
  if (finished) {
    await auditStatement(scope, {
      actorType: "user",
      actorId: request.requestedBy,
      action: "privacy.erasure.complete",
      targetType: "subject",
      targetId: request.subjectHash,
      outcome: "success",
      details: { requestId },
    });
  }
  return "done";
}

/** Audit entries about something of the person keep who did what and when; their target becomes the subject's hash. */
function anonymiseAudit(sweep: Sweep, ...targets: SQL[]) {
  return sweep.scope.update(auditLog, { targetType: "subject", targetId: sweep.request.subjectHash, details: null }, or(...targets));
}

/**
 * A session whose object may still write to D1: live, or ended so recently that its transcript outbox may still be
 * draining and its post-call analysis is not settled (ready or failed; its retries take about 13 minutes). Sweeping
 * it now would let those writes bring rows back after the sweep.
 */
export const SETTLE_MS = 15 * 60_000;
const stillWriting = (now: number) => sql`exists (
  select 1 from ${sessions}
   where ${sessions.id} = ${calls.sessionId} and ${sessions.tenantId} = ${calls.tenantId}
     and (${sessions.status} = 'active' or (${sessions.endedAt} > ${now - SETTLE_MS} and not exists (
       select 1 from ${sessionAnalysis}
        where ${sessionAnalysis.sessionId} = ${sessions.id} and ${sessionAnalysis.status} in ('ready', 'failed')))))`;

/**
 * The person's calls, a page at a time: each page's sessions (every call of them, with their recordings, carrier
 * call routes in KV, events, transcripts, turn timings, switches, analysis and escalations) go in one D1 batch. A call whose
 * session's object is still writing is left for a later run (`waiting`).
 */
async function eraseCalls(sweep: Sweep): Promise<StepOutcome> {
  const { scope, env, phones } = sweep;
  if (phones.length === 0) return "done";
  while (sweep.budget.left > 0) {
    const page = await scope
      .selectFields(calls, { sessionId: calls.sessionId }, callsOfPhones(phones), not(stillWriting(Date.now())))
      .limit(CALLS_PER_BATCH);
    if (page.length === 0) {
      const [stillLive] = await scope.selectFields(calls, { id: calls.id }, callsOfPhones(phones)).limit(1);
      return stillLive ? "waiting" : "done";
    }
    const sessionIds = [...new Set(page.map((row) => row.sessionId))];
    // Each session's object holds its own copy (the call's record, recent transcript lines): emptied first.
    const objects = await Promise.all(sessionIds.map((sessionId) => callObject(env, sessionId).forget()));
    if (objects.includes("busy")) return "waiting";
    const legs = await scope.selectFields(
      calls,
      { carrier: calls.carrier, carrierCallId: calls.carrierCallId },
      inArray(calls.sessionId, sessionIds),
    );
    await Promise.all(sessionIds.map((sessionId) => deleteRecordings(env, scope.tenantId, sessionId)));
    await Promise.all(legs.flatMap((leg) => (leg.carrierCallId ? [forgetCarrierCall(env, leg.carrier, leg.carrierCallId)] : [])));
    const callIds = scope.selectFields(calls, { id: calls.id }, inArray(calls.sessionId, sessionIds));
    await scope.batch([
      anonymiseAudit(sweep, inArray(auditLog.targetId, sessionIds), inArray(auditLog.targetId, callIds)),
      scope.delete(callEvents, inArray(callEvents.callId, callIds)),
      scope.delete(callReconcile, inArray(callReconcile.callId, callIds)),
      scope.delete(transcriptLines, inArray(transcriptLines.sessionId, sessionIds)),
      scope.delete(turnTimings, inArray(turnTimings.sessionId, sessionIds)),
      scope.delete(providerSwitches, inArray(providerSwitches.sessionId, sessionIds)),
      scope.delete(sessionAnalysis, inArray(sessionAnalysis.sessionId, sessionIds)),
      scope.delete(sessionEscalations, inArray(sessionEscalations.sessionId, sessionIds)),
      scope.delete(recordings, inArray(recordings.sessionId, sessionIds)),
      scope.delete(calls, inArray(calls.sessionId, sessionIds)),
      scope.delete(sessions, inArray(sessions.id, sessionIds)),
    ]);
    sweep.budget.left -= 1;
  }
  return "more";
}

/**
 * Each of the person's customer rows with everything that hangs off it, one D1 batch per customer: invoice items,
 * ledger entries, reminders, messages naming them, invoices, the customer. A customer's ledger goes with their
 * invoices and the customer row together, so the books of every other customer are untouched and still add up,
 * and no balance is left without the entries it is the sum of.
 */
async function eraseCustomers(sweep: Sweep): Promise<StepOutcome> {
  const { scope } = sweep;
  for (const customerId of sweep.customerIds) {
    if (sweep.budget.left <= 0) return "more";
    const theirs = <T extends typeof invoices | typeof ledgerEntries | typeof reminders>(table: T) =>
      scope.selectFields(table, { id: table.id }, eq(table.customerId, customerId));
    await scope.batch([
      anonymiseAudit(
        sweep,
        eq(auditLog.targetId, customerId),
        inArray(auditLog.targetId, theirs(invoices)),
        inArray(auditLog.targetId, theirs(ledgerEntries)),
        inArray(auditLog.targetId, theirs(reminders)),
      ),
      scope.delete(invoiceItems, inArray(invoiceItems.invoiceId, theirs(invoices))),
      scope.delete(ledgerEntries, eq(ledgerEntries.customerId, customerId)),
      scope.delete(reminders, eq(reminders.customerId, customerId)),
      scope.delete(whatsappMessages, eq(whatsappMessages.customerId, customerId)),
      scope.delete(invoices, eq(invoices.customerId, customerId)),
      scope.delete(customers, eq(customers.id, customerId)),
    ]);
    sweep.budget.left -= 1;
  }
  return "done";
}

/** WhatsApp messages from or to the person's numbers that named no customer, and their conversation state in KV. */
async function eraseMessages(sweep: Sweep): Promise<StepOutcome> {
  const { scope, env } = sweep;
  const waIds = sweep.phones.map(waIdOf);
  if (waIds.length === 0) return "done";
  if (sweep.budget.left <= 0) return "more";
  await Promise.all(waIds.map((waId) => env.CACHE.delete(conversationStateKey(scope.tenantId, waId))));
  await scope.delete(whatsappMessages, messagesOf(waIds, sweep.customerIds));
  sweep.budget.left -= 1;
  return "done";
}

/**
 * Stored answers of idempotent requests (`idempotency_keys.response_body`) that carry the person: a customer created
 * (their id, their number), an invoice, a payment or a reminder of theirs (its id); and the marks of those writes
 * (`idempotency_writes.ref`, the id). Runs before the customer step, while their invoices, ledger entries and
 * reminders still say which ids are theirs.
 */
async function eraseIdempotency(sweep: Sweep): Promise<StepOutcome> {
  const { scope, customerIds, phones } = sweep;
  if (customerIds.length + phones.length === 0) return "done";
  if (sweep.budget.left <= 0) return "more";
  const body = idempotencyKeys.responseBody;
  const mentions = <T extends typeof invoices | typeof ledgerEntries | typeof reminders>(table: T) =>
    customerIds.length === 0
      ? undefined
      : sql`exists (select 1 from ${table} where ${table.tenantId} = ${scope.tenantId} and ${inArray(table.customerId, customerIds)}
                and ${body} like '%' || ${table.id} || '%')`;
  await scope.delete(
    idempotencyKeys,
    isNotNull(body),
    or(
      ...[...customerIds, ...phones].map((needle) => like(body, `%${needle}%`)),
      mentions(invoices),
      mentions(ledgerEntries),
      mentions(reminders),
    ),
  );
  // A write's mark names what it wrote (its id): her invoices', payments' and reminders' marks go with their answers.
  const wrote = <T extends typeof invoices | typeof ledgerEntries | typeof reminders>(table: T) =>
    sql`exists (select 1 from ${table} where ${table.tenantId} = ${scope.tenantId} and ${inArray(table.customerId, customerIds)}
              and ${table.id} = ${idempotencyWrites.ref})`;
  if (customerIds.length > 0) await scope.delete(idempotencyWrites, or(wrote(invoices), wrote(ledgerEntries), wrote(reminders)));
  sweep.budget.left -= 1;
  return "done";
}

/**
 * The tenant's business cache (customer lists, balances, invoice histories, reminder queues, intent readings) may
 * hold the person in any entry: every kind moves to a new generation (so no isolate reads an old entry again), and
 * every entry of the tenant is deleted from KV, a page at a time. The cache refills from D1 on the next reads.
 */
async function eraseCache(sweep: Sweep): Promise<StepOutcome> {
  const { env, scope } = sweep;
  await new BusinessCache(env.CACHE, scope.tenantId).invalidate(...(Object.keys(CACHE_LIFETIMES_SECONDS) as CacheKind[]));
  while (sweep.budget.left > 0) {
    const page = await env.CACHE.list({ prefix: `biz:${scope.tenantId}:`, limit: KV_PAGE });
    await Promise.all(page.keys.map((key) => env.CACHE.delete(key.name)));
    sweep.budget.left -= 1;
    if (page.list_complete) return "done";
  }
  return "more";
}
