import { asc, type Column, eq, gt, inArray, or } from "drizzle-orm";
import {
  auditLog,
  callEvents,
  calls,
  customers,
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
  whatsappMessages,
} from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { notFound } from "../shared/errors.ts";
import { MASKED_DIGIT, maskerFor, type PiiRedaction } from "../shared/pii.ts";
import type { recordingLinker } from "../shared/recordings.ts";

/**
 * Everything a tenant holds about one person — found by their phone number or their customer id — as one JSON
 * document (`POST /api/v1/privacy/export`). The person's phone numbers are the given one and their customer rows'
 * phones; their calls are those from or to any of them, and the sessions, transcripts, provider switches and call
 * events hang off those calls. Every section is read in pages and capped at MAX_ROWS; a capped section is named in
 * `truncated`, so an export never claims to be complete when it is not. Turn timings are left out: latency
 * measurements of the platform, nothing said or done by the person.
 *
 * With `piiRedaction` "mask", free text (transcripts, WhatsApp bodies, notes, reminder messages, DTMF digits in call
 * events) goes through the masker; the identifying fields the export is about (the customer's phone and email, the
 * calls' numbers) are kept, since they say whose data this is.
 */

/** The most rows of one section (all calls, all transcript lines, …) an export carries. */
export const MAX_ROWS = 5_000;
/** Rows per D1 read while paging. */
const PAGE = 500;
/** Ids per `IN (…)` list: D1 binds at most 100 parameters per statement. */
const IDS_PER_QUERY = 50;

export const RECORDINGS_NOTE = "Each recording's url is a signed link to its WAV, valid until its expiresAt.";
export const UNSIGNED_RECORDINGS_NOTE = "Recording links are not configured (RECORDING_SIGNING_KEY): recordings are listed without links.";

type RecordingLinker = ReturnType<typeof recordingLinker>;

export type Subject = { phone: string; customerId?: undefined } | { customerId: string; phone?: undefined };

type Row = Record<string, unknown>;

export interface PrivacyExport {
  subject: { phone: string | null; customerId: string | null };
  generatedAt: string;
  piiRedaction: PiiRedaction;
  phones: string[];
  customers: Row[];
  calls: Row[];
  callEvents: Row[];
  sessions: Row[];
  transcripts: Row[];
  providerSwitches: Row[];
  invoices: Row[];
  invoiceItems: Row[];
  ledger: Row[];
  reminders: Row[];
  whatsappMessages: Row[];
  auditEntries: Row[];
  analysis: Row[];
  escalations: Row[];
  recordings: Row[];
  notes: { recordings: string };
  maxRowsPerSection: number;
  truncated: string[];
}

/** Reads every page of a keyed query (ordered by `id`) until it runs out or the section's cap is reached. */
async function paged(
  read: (afterId: string | null, limit: number) => Promise<Row[]>,
  section: string,
  truncated: Set<string>,
  cap = MAX_ROWS,
): Promise<Row[]> {
  const rows: Row[] = [];
  let afterId: string | null = null;
  while (rows.length < cap) {
    const limit = Math.min(PAGE, cap - rows.length);
    // One more than wanted: its presence says another page exists.
    const page = await read(afterId, limit + 1);
    rows.push(...page.slice(0, limit));
    if (page.length <= limit) return rows;
    afterId = String(rows.at(-1)!.id);
  }
  truncated.add(section);
  return rows;
}

/** The same paged read over many parent ids, `IDS_PER_QUERY` at a time, under one cap for the section. */
async function pagedByIds(
  ids: string[],
  read: (ids: string[], afterId: string | null, limit: number) => Promise<Row[]>,
  section: string,
  truncated: Set<string>,
): Promise<Row[]> {
  const rows: Row[] = [];
  let start = 0;
  for (; start < ids.length && rows.length < MAX_ROWS; start += IDS_PER_QUERY) {
    const chunk = ids.slice(start, start + IDS_PER_QUERY);
    rows.push(...(await paged((afterId, limit) => read(chunk, afterId, limit), section, truncated, MAX_ROWS - rows.length)));
  }
  if (start < ids.length) truncated.add(section);
  return rows;
}

/**
 * Who the subject is, as the export and the erasure (erasure.ts) both find them: their customer rows (the one named,
 * or every customer with the phone), their phone numbers (the given one and those customers' phones) and the same
 * numbers as WhatsApp ids (digits only). An unknown customer id is 404.
 */
export async function resolveSubject(scope: TenantScope, subject: Subject) {
  const customerRows = (
    subject.customerId !== undefined
      ? await scope.select(customers, eq(customers.id, subject.customerId)).limit(1)
      : await scope.select(customers, eq(customers.phone, subject.phone)).limit(10)
  ) as Row[];
  if (subject.customerId !== undefined && customerRows.length === 0) throw notFound("Customer");
  const customerIds = customerRows.map((row) => String(row.id));
  const phones = [
    ...new Set([...(subject.phone ? [subject.phone] : []), ...customerRows.flatMap((row) => (row.phone ? [String(row.phone)] : []))]),
  ];
  return { customerRows, customerIds, phones, waIds: phones.map(waIdOf) };
}

export const waIdOf = (phone: string) => phone.replace(/^\+/, "");
/** The subject's calls: from or to any of their numbers (both columns are indexed with the tenant). */
export const callsOfPhones = (phones: string[]) => or(inArray(calls.fromNumber, phones), inArray(calls.toNumber, phones));
/** The subject's WhatsApp messages: with one of their WhatsApp ids, or naming one of their customers. */
export const messagesOf = (waIds: string[], customerIds: string[]) =>
  or(
    waIds.length > 0 ? inArray(whatsappMessages.waId, waIds) : undefined,
    customerIds.length > 0 ? inArray(whatsappMessages.customerId, customerIds) : undefined,
  );

const after = (column: Column, id: string | null) => (id === null ? undefined : gt(column, id));
/** Every string inside a value masked (an analysis' summary, insights and action items). */
function deepMask(value: unknown, mask: (text: string) => string): unknown {
  if (typeof value === "string") return mask(value);
  if (Array.isArray(value)) return value.map((item) => deepMask(item, mask));
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, deepMask(v, mask)]));
  return value;
}

/** Paging goes by id; the document reads in each parent's own order (a transcript by seq, a call's events by seq). */
const bySeqWithin = (parent: string) => (a: Row, b: Row) =>
  String(a[parent]).localeCompare(String(b[parent])) || Number(a.seq) - Number(b.seq);
/** A transcript line of a typed DTMF digit, as the call object writes it (voice/providers/provider.ts `dtmfText`). */
const DTMF_LINE = /^\[DTMF\] [0-9A-D*#]$/;
const withoutTenant = ({ tenantId: _tenant, ...row }: Row) => row;

export async function exportSubject(
  scope: TenantScope,
  subject: Subject,
  mode: PiiRedaction,
  linkFor: RecordingLinker,
): Promise<PrivacyExport> {
  const mask = maskerFor(mode);
  // An analysis made before the tenant turned masking on holds what was said as it was said.
  const maskStrings = (row: Row): Row => (mode === "mask" ? (deepMask(row, mask) as Row) : row);
  const maskField = (field: string) => (row: Row) =>
    typeof row[field] === "string" ? { ...row, [field]: mask(row[field] as string) } : row;
  const truncated = new Set<string>();

  const { customerRows, customerIds, phones, waIds } = await resolveSubject(scope, subject);

  const callRows =
    phones.length === 0
      ? []
      : await paged(
          (id, limit) =>
            scope.select(calls, callsOfPhones(phones), after(calls.id, id)).orderBy(asc(calls.id)).limit(limit) as Promise<Row[]>,
          "calls",
          truncated,
        );
  const callIds = callRows.map((row) => String(row.id));
  const sessionIds = [...new Set(callRows.map((row) => String(row.sessionId)))];

  const bySession = <T extends typeof sessionAnalysis | typeof sessionEscalations | typeof recordings>(table: T, section: string) =>
    pagedByIds(
      sessionIds,
      (ids, id, limit) =>
        scope
          .select(table, inArray(table.sessionId, ids), after(table.sessionId, id))
          .orderBy(asc(table.sessionId))
          .limit(limit) as Promise<Row[]>,
      section,
      truncated,
    );
  const [analysisRows, escalationRows, recordingRows] = await Promise.all([
    bySession(sessionAnalysis, "analysis"),
    bySession(sessionEscalations, "escalations"),
    bySession(recordings, "recordings"),
  ]);
  const recordingsWithLinks = await Promise.all(
    recordingRows.map(async ({ r2Key: _key, ...row }) => ({ ...row, ...(linkFor && (await linkFor(String(row.id)))) })),
  );

  const [sessionRows, transcriptRows, switchRows, eventRows] = await Promise.all([
    pagedByIds(
      sessionIds,
      (ids, id, limit) =>
        scope.select(sessions, inArray(sessions.id, ids), after(sessions.id, id)).orderBy(asc(sessions.id)).limit(limit) as Promise<Row[]>,
      "sessions",
      truncated,
    ),
    pagedByIds(
      sessionIds,
      (ids, id, limit) =>
        scope
          .select(transcriptLines, inArray(transcriptLines.sessionId, ids), after(transcriptLines.id, id))
          .orderBy(asc(transcriptLines.id))
          .limit(limit) as Promise<Row[]>,
      "transcripts",
      truncated,
    ),
    pagedByIds(
      sessionIds,
      (ids, id, limit) =>
        scope
          .select(providerSwitches, inArray(providerSwitches.sessionId, ids), after(providerSwitches.id, id))
          .orderBy(asc(providerSwitches.id))
          .limit(limit) as Promise<Row[]>,
      "providerSwitches",
      truncated,
    ),
    pagedByIds(
      callIds,
      (ids, id, limit) =>
        scope
          .select(callEvents, inArray(callEvents.callId, ids), after(callEvents.id, id))
          .orderBy(asc(callEvents.id))
          .limit(limit) as Promise<Row[]>,
      "callEvents",
      truncated,
    ),
  ]);

  const byCustomer = <T extends typeof invoices | typeof ledgerEntries | typeof reminders>(table: T, section: string) =>
    pagedByIds(
      customerIds,
      (ids, id, limit) =>
        scope.select(table, inArray(table.customerId, ids), after(table.id, id)).orderBy(asc(table.id)).limit(limit) as Promise<Row[]>,
      section,
      truncated,
    );
  const [invoiceRows, ledgerRows, reminderRows, messageRows] = await Promise.all([
    byCustomer(invoices, "invoices"),
    byCustomer(ledgerEntries, "ledger"),
    byCustomer(reminders, "reminders"),
    waIds.length === 0 && customerIds.length === 0
      ? []
      : paged(
          (id, limit) =>
            scope
              .select(whatsappMessages, messagesOf(waIds, customerIds), after(whatsappMessages.id, id))
              .orderBy(asc(whatsappMessages.id))
              .limit(limit) as Promise<Row[]>,
          "whatsappMessages",
          truncated,
        ),
  ]);
  const invoiceIds = invoiceRows.map((row) => String(row.id));
  const [itemRows, auditRows] = await Promise.all([
    pagedByIds(
      invoiceIds,
      (ids, id, limit) =>
        scope
          .select(invoiceItems, inArray(invoiceItems.invoiceId, ids), after(invoiceItems.id, id))
          .orderBy(asc(invoiceItems.id))
          .limit(limit) as Promise<Row[]>,
      "invoiceItems",
      truncated,
    ),
    pagedByIds(
      [...customerIds, ...callIds, ...sessionIds, ...invoiceIds],
      (ids, id, limit) =>
        scope.select(auditLog, inArray(auditLog.targetId, ids), after(auditLog.id, id)).orderBy(asc(auditLog.id)).limit(limit) as Promise<
          Row[]
        >,
      "auditEntries",
      truncated,
    ),
  ]);

  // Lines and events stored before the tenant turned masking on hold DTMF digits as typed.
  const maskTranscript = (row: Row) =>
    mode === "mask" ? { ...row, text: DTMF_LINE.test(String(row.text)) ? `[DTMF] ${MASKED_DIGIT}` : mask(String(row.text)) } : row;
  const maskDtmf = (row: Row) =>
    String(row.event).endsWith("dtmf") && mode === "mask" && row.detail ? { ...row, detail: MASKED_DIGIT } : row;
  return {
    subject: { phone: subject.phone ?? null, customerId: subject.customerId ?? null },
    generatedAt: new Date().toISOString(),
    piiRedaction: mode,
    phones,
    customers: customerRows.map(withoutTenant).map(maskField("notes")),
    calls: callRows.map(withoutTenant),
    callEvents: eventRows.sort(bySeqWithin("callId")).map(withoutTenant).map(maskDtmf),
    sessions: sessionRows.map(withoutTenant),
    transcripts: transcriptRows.sort(bySeqWithin("sessionId")).map(withoutTenant).map(maskTranscript),
    providerSwitches: switchRows.map(withoutTenant),
    invoices: invoiceRows.map(withoutTenant).map(maskField("notes")),
    invoiceItems: itemRows.map(withoutTenant),
    ledger: ledgerRows.map(withoutTenant),
    reminders: reminderRows.map(withoutTenant).map(maskField("message")),
    whatsappMessages: messageRows.map(withoutTenant).map(maskField("body")),
    auditEntries: auditRows.map(withoutTenant),
    analysis: analysisRows.map(withoutTenant).map(maskStrings),
    escalations: escalationRows.map(withoutTenant),
    recordings: recordingsWithLinks.map(withoutTenant),
    notes: { recordings: linkFor ? RECORDINGS_NOTE : UNSIGNED_RECORDINGS_NOTE },
    maxRowsPerSection: MAX_ROWS,
    truncated: [...truncated].sort(),
  };
}

/** The subject as the audit log keeps it: a hash, never the number or id itself, salted with the tenant. */
export async function subjectHash(tenantId: string, subject: Subject): Promise<string> {
  const text = `${tenantId}:${subject.phone ?? `customer:${subject.customerId}`}`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
