import { customerChange, customerInput } from "../business/engine.ts";
import { conflictResponse, errorResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { customerSchema, engineFor, idParam, ledgerEntrySchema } from "./business-schemas.ts";
import { pageOf, pageQuery } from "./pagination.ts";

/**
 * Customers of the shop (`/api/v1/customers`): one per phone number per tenant (409 `phone_taken`), phone numbers
 * stored as E.164; the detail carries the balance, the ledger reads oldest first with the running balance.
 */
const createRoute = protectedRoute("customers:write", {
  method: "post",
  path: "/api/v1/customers",
  tags: ["business"],
  summary: "Add a customer",
  request: jsonBody(customerInput.openapi("CustomerInput")),
  responses: { 201: jsonResponse(customerSchema, "Created"), ...conflictResponse },
});

const listRoute = protectedRoute("business:read", {
  method: "get",
  path: "/api/v1/customers",
  tags: ["business"],
  summary: "The tenant's customers by name, a page at a time",
  request: { query: pageQuery },
  responses: { 200: jsonResponse(pageOf(customerSchema, "CustomerPage"), "Customers") },
});

const getRoute = protectedRoute("business:read", {
  method: "get",
  path: "/api/v1/customers/{id}",
  tags: ["business"],
  summary: "A customer, with what they owe",
  request: { params: idParam },
  responses: { 200: jsonResponse(customerSchema, "The customer"), ...notFoundResponse },
});

const patchRoute = protectedRoute("customers:write", {
  method: "patch",
  path: "/api/v1/customers/{id}",
  tags: ["business"],
  summary: "Change some of a customer's details (null clears an optional one)",
  request: { params: idParam, ...jsonBody(customerChange.openapi("CustomerChange")) },
  responses: { 200: jsonResponse(customerSchema, "The customer after the change"), ...notFoundResponse, ...conflictResponse },
});

const ledgerRoute = protectedRoute("business:read", {
  method: "get",
  path: "/api/v1/customers/{id}/ledger",
  tags: ["business"],
  summary: "The customer's ledger, oldest first, each entry with the balance after it",
  request: { params: idParam, query: pageQuery },
  responses: {
    200: jsonResponse(pageOf(ledgerEntrySchema, "LedgerPage"), "Entries"),
    ...notFoundResponse,
    422: errorResponse("Unusable input"),
  },
});

export const customerRoutes = publicRouter()
  .openapi(createRoute, async (c) => c.json(await engineFor(c).createCustomer(c.req.valid("json")), 201))
  .openapi(listRoute, async (c) => c.json(await engineFor(c).listCustomers(c.req.valid("query")), 200))
  .openapi(getRoute, async (c) => c.json(await engineFor(c).getCustomer(c.req.valid("param").id), 200))
  .openapi(patchRoute, async (c) => c.json(await engineFor(c).updateCustomer(c.req.valid("param").id, c.req.valid("json")), 200))
  .openapi(ledgerRoute, async (c) => c.json(await engineFor(c).ledger(c.req.valid("param").id, c.req.valid("query")), 200));
