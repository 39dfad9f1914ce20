import { z } from "@hono/zod-openapi";
import { errorResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { exportSubject, type Subject, subjectHash } from "../privacy/export.ts";
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
    recordings: rows,
    notes: z.object({ analysis: z.string(), recordings: z.string() }),
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

export const privacyRoutes = publicRouter().openapi(exportRoute, async (c) => {
  const body = c.req.valid("json");
  const subject: Subject = body.phone !== undefined ? { phone: body.phone } : { customerId: body.customerId! };
  const scope = c.get("scope");
  // A stored settings document that no longer parses fails the export (500) rather than exporting unmasked.
  const { piiRedaction } = await readTenantSettings(scope);
  const document = await exportSubject(scope, subject, piiRedaction);
  await auditFromRequest(c, {
    action: "privacy.export",
    targetType: "subject",
    targetId: await subjectHash(scope.tenantId, subject),
    outcome: "success",
    details: { by: subject.phone !== undefined ? "phone" : "customerId", truncated: document.truncated },
  });
  return c.json(document, 200);
});
