import { z } from "@hono/zod-openapi";
import { invoiceInput } from "../business/engine.ts";
import { runOnce } from "../business/idempotency.ts";
import { conflictResponse, errorResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { engineFor, idempotencyHeader, idParam, invoiceSchema } from "./business-schemas.ts";
import { pageOf, pageQuery } from "./pagination.ts";

/**
 * Invoices (`/api/v1/invoices`): the invoice, its items, the customer's ledger debit and balance are written as one
 * transaction; a void writes the reversing credit, the balance and the status as one, exactly once however many
 * voids race. Items name a product by id or by name (exactly one match, else 422 with candidates), or are free text
 * with their own `unitPrice`.
 */
const createRoute = protectedRoute("invoices:write", {
  method: "post",
  path: "/api/v1/invoices",
  tags: ["business"],
  summary: "Write an invoice (and debit the customer)",
  request: { headers: idempotencyHeader, ...jsonBody(invoiceInput.openapi("InvoiceInput")) },
  responses: {
    201: jsonResponse(invoiceSchema, "Created (or, for a retried Idempotency-Key, the first answer)"),
    ...notFoundResponse,
    ...conflictResponse,
    422: errorResponse(
      "Unknown or ambiguous product (with candidates), amount or quantity out of range, currency mismatch, Idempotency-Key reused",
    ),
  },
});

const listRoute = protectedRoute("business:read", {
  method: "get",
  path: "/api/v1/invoices",
  tags: ["business"],
  summary: "Invoices, newest first, optionally one customer's",
  request: { query: pageQuery.extend({ customerId: z.string().max(64).optional() }) },
  responses: { 200: jsonResponse(pageOf(invoiceSchema, "InvoicePage"), "Invoices") },
});

const getRoute = protectedRoute("business:read", {
  method: "get",
  path: "/api/v1/invoices/{id}",
  tags: ["business"],
  summary: "An invoice with its items",
  request: { params: idParam },
  responses: { 200: jsonResponse(invoiceSchema, "The invoice"), ...notFoundResponse },
});

const voidRoute = protectedRoute("invoices:write", {
  method: "post",
  path: "/api/v1/invoices/{id}/void",
  tags: ["business"],
  summary: "Void an open invoice (credits the customer back); a second void is 409 `invoice_already_void`",
  request: { params: idParam, ...jsonBody(z.strictObject({ reason: z.string().trim().max(500).optional() }).openapi("InvoiceVoid")) },
  responses: { 200: jsonResponse(invoiceSchema, "The invoice, void"), ...notFoundResponse, ...conflictResponse },
});

export const invoiceRoutes = publicRouter()
  .openapi(createRoute, async (c) => {
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const engine = engineFor(c);
    const answer =
      key === undefined
        ? { body: await engine.createInvoice(body) }
        : await runOnce(c.get("scope"), engine.tenantId, "invoices", key, body, {
            write: async (mark) => ({ status: 201, body: await engine.createInvoice(body, mark) }),
            answer: async (invoiceId) => ({ status: 201, body: await engine.writtenInvoice(invoiceId) }),
          });
    return c.json(answer.body, 201);
  })
  .openapi(listRoute, async (c) => c.json(await engineFor(c).listInvoices(c.req.valid("query")), 200))
  .openapi(getRoute, async (c) => c.json(await engineFor(c).getInvoice(c.req.valid("param").id), 200))
  .openapi(voidRoute, async (c) => {
    const { id } = c.req.valid("param");
    const invoice = await engineFor(c).voidInvoice(id, c.req.valid("json").reason);
    await auditFromRequest(c, {
      action: "invoice.void",
      targetType: "invoice",
      targetId: id,
      outcome: "success",
      details: { customerId: invoice.customerId },
    });
    return c.json(invoice, 200);
  });
