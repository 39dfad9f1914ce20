import { paymentInput } from "../business/engine.ts";
import { runOnce } from "../business/idempotency.ts";
import { conflictResponse, errorResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { engineFor, idempotencyHeader, ledgerEntrySchema } from "./business-schemas.ts";

/** `POST /api/v1/payments`: the ledger credit and the customer's balance as one transaction; answers the entry. */
const createRoute = protectedRoute("payments:write", {
  method: "post",
  path: "/api/v1/payments",
  tags: ["business"],
  summary: "Record a payment (credits the customer)",
  request: { headers: idempotencyHeader, ...jsonBody(paymentInput.openapi("PaymentInput")) },
  responses: {
    201: jsonResponse(ledgerEntrySchema, "The ledger entry (or, for a retried Idempotency-Key, the first answer)"),
    ...notFoundResponse,
    ...conflictResponse,
    422: errorResponse("Amount out of range, currency mismatch, invoice of another customer, Idempotency-Key reused"),
  },
});

export const paymentRoutes = publicRouter().openapi(createRoute, async (c) => {
  const body = c.req.valid("json");
  const key = c.req.valid("header")["idempotency-key"];
  const engine = engineFor(c);
  const answer =
    key === undefined
      ? { body: await engine.recordPayment(body) }
      : await runOnce(c.get("scope"), engine.tenantId, "payments", key, body, {
          write: async (mark) => ({ status: 201, body: await engine.recordPayment(body, mark) }),
          answer: async (entryId) => ({ status: 201, body: await engine.writtenPayment(entryId) }),
        });
  return c.json(answer.body, 201);
});
