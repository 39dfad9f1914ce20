import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../http/context.ts";
import { conflictResponse, errorResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { confirmErasure, requestErasure } from "../privacy/erasure-request.ts";
import { runSweep } from "../privacy/erasure-sweep.ts";
import { exportSubject, type Subject, subjectHash } from "../privacy/export.ts";
import { AppError } from "../shared/errors.ts";
import { recordingLinker } from "../shared/recordings.ts";
import { readTenantSettings } from "../shared/tenant-settings.ts";

/**
 * `POST /api/v1/privacy/export` (admins): everything the tenant holds about one person, found by phone number or
 * customer id, as one JSON document (workers/privacy/export.ts). Audited as `privacy.export` with the subject as a
 * hash only: the audit trail must not become a list of whose data was asked for.
 */
const exportRequest = z
  .strictObject({
    phone: z
      .string()
      .regex(/^\+[1-9]\d{6,14}$/, "an E.164 number such as +919876543210")
      .optional(),
    customerId: z.string().min(1).max(64).optional(),
  })
  .refine((body) => (body.phone === undefined) !== (body.customerId === undefined), "give exactly one of phone and customerId")
  .openapi("PrivacyExportRequest");

const rows = z.array(z.record(z.string(), z.unknown()));
const exportDocument = z
  .object({
    subject: z.object({ phone: z.string().nullable(), customerId: z.string().nullable() }),
    generatedAt: z.string(),
    piiRedaction: z.enum(["off", "mask"]),
    phones: z.array(z.string()),
    customers: rows,
    calls: rows,
    callEvents: rows,
    sessions: rows,
    transcripts: rows,
    providerSwitches: rows,
    invoices: rows,
    invoiceItems: rows,
    ledger: rows,
    reminders: rows,
    whatsappMessages: rows,
    auditEntries: rows,
    analysis: rows,
    escalations: rows,
    recordings: rows,
    notes: z.object({ recordings: z.string().describe("what the recordings' links are") }),
    maxRowsPerSection: z.number().int(),
    truncated: z.array(z.string()).describe("sections that reached maxRowsPerSection and hold only their first rows"),
  })
  .openapi("PrivacyExport");

const exportRoute = protectedRoute("privacy:manage", {
  method: "post",
  path: "/api/v1/privacy/export",
  tags: ["privacy"],
  summary: "Everything the tenant holds about a phone number or a customer, as one document",
  request: jsonBody(exportRequest),
  responses: { 200: jsonResponse(exportDocument, "The export"), ...notFoundResponse, 400: errorResponse("Neither or both given") },
});

/**
 * `POST /api/v1/privacy/erasure` (admins): the same subject as the export; a 6-digit code goes by email to the admin
 * asking, and `POST /api/v1/privacy/erasure/{requestId}/confirm` with it (10 minutes, 5 tries) deletes everything
 * about the person (workers/privacy/erasure-*.ts). The code is never in an answer or a log.
 */
const erasureRequestBody = exportRequest.openapi("PrivacyErasureRequest");
const erasureAccepted = z
  .object({ requestId: z.uuid(), expiresAt: z.string().describe("when the emailed code stops confirming the request") })
  .openapi("PrivacyErasureAccepted");
const erasureOutcome = z
  .object({
    requestId: z.uuid(),
    status: z.enum(["done", "sweeping"]).describe("sweeping: the deletion continues in the background (the cron) and completes"),
  })
  .openapi("PrivacyErasureOutcome");

const erasureRoute = protectedRoute("privacy:manage", {
  method: "post",
  path: "/api/v1/privacy/erasure",
  tags: ["privacy"],
  summary: "Ask to erase everything about a phone number or a customer; a confirmation code is emailed to you",
  request: jsonBody(erasureRequestBody),
  responses: {
    202: jsonResponse(erasureAccepted, "Asked; the code is on its way to your email"),
    ...notFoundResponse,
    400: errorResponse("Neither or both given"),
    403: errorResponse("Not an admin, or not a signed-in user (an API key has no mailbox)"),
    503: errorResponse("The code could not be emailed; nothing will be erased"),
  },
});

const confirmRoute = protectedRoute("privacy:manage", {
  method: "post",
  path: "/api/v1/privacy/erasure/{requestId}/confirm",
  tags: ["privacy"],
  summary: "Confirm an erasure with the emailed code: everything about the person is deleted",
  request: {
    params: z.object({ requestId: z.uuid().openapi({ param: { name: "requestId", in: "path" } }) }),
    ...jsonBody(z.strictObject({ code: z.string().regex(/^\d{6}$/, "the 6-digit code from the email") })),
  },
  responses: {
    200: jsonResponse(erasureOutcome, "Confirmed and swept (or sweeping)"),
    ...notFoundResponse,
    ...conflictResponse,
    410: errorResponse("The request expired or used up its 5 tries"),
    422: errorResponse("Wrong code; `details.triesLeft` says how many remain"),
  },
});

const subjectOf = (body: z.infer<typeof exportRequest>): Subject =>
  body.phone !== undefined ? { phone: body.phone } : { customerId: body.customerId! };

async function auditConfirmation(c: Context<AppEnv>, requestId: string, outcome: "success" | "failure", reason?: string) {
  await auditFromRequest(c, {
    action: "privacy.erasure.confirm",
    targetType: "erasure_request",
    targetId: requestId,
    outcome,
    ...(reason && { details: { reason } }),
  });
}

export const privacyRoutes = publicRouter()
  .openapi(erasureRoute, async (c) => {
    const scope = c.get("scope");
    const request = await requestErasure(c.env, scope, c.get("principal"), subjectOf(c.req.valid("json")));
    await auditFromRequest(c, {
      action: "privacy.erasure.request",
      targetType: "subject",
      targetId: request.subjectHash,
      outcome: "success",
      details: { requestId: request.requestId },
    });
    return c.json({ requestId: request.requestId, expiresAt: new Date(request.expiresAt).toISOString() }, 202);
  })
  .openapi(confirmRoute, async (c) => {
    const { requestId } = c.req.valid("param");
    const scope = c.get("scope");
    try {
      await confirmErasure(scope, requestId, c.req.valid("json").code);
    } catch (error) {
      if (error instanceof AppError && error.status !== 404) await auditConfirmation(c, requestId, "failure", error.code);
      throw error;
    }
    await auditConfirmation(c, requestId, "success");
    // Swept here as far as one request's budget goes; a sweep cut short (or cut off) is finished by the cron.
    const status = await runSweep(c.env, scope.tenantId, requestId);
    return c.json({ requestId, status }, 200);
  })
  .openapi(exportRoute, async (c) => {
    const body = c.req.valid("json");
    const subject = subjectOf(body);
    const scope = c.get("scope");
    // A stored settings document that no longer parses fails the export (500) rather than exporting unmasked.
    const { piiRedaction } = await readTenantSettings(scope);
    const document = await exportSubject(scope, subject, piiRedaction, recordingLinker(c.env, c.req.url));
    await auditFromRequest(c, {
      action: "privacy.export",
      targetType: "subject",
      targetId: await subjectHash(scope.tenantId, subject),
      outcome: "success",
      details: { by: subject.phone !== undefined ? "phone" : "customerId", truncated: document.truncated },
    });
    return c.json(document, 200);
  });
