import { z } from "@hono/zod-openapi";
import { searchCustomers } from "../business/customer-search.ts";
import { presentCustomer } from "../business/records.ts";
import { jsonResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { customerSchema } from "./business-schemas.ts";

/**
 * `GET /api/v1/customers/search?q=`: the tenant's best five customers for what a person typed or said (a name
 * misheard or misspelt, a nickname, the last digits of a phone, an email), each with a score and what matched.
 * Mounted before `/api/v1/customers/{id}` so "search" is never read as an id.
 */
const matchedField = z.enum(["name", "nickname", "phone", "email", "phonetic"]);

const searchResultSchema = z
  .object({
    matches: z.array(z.object({ customer: customerSchema, score: z.number().min(0).max(1), matchedOn: z.array(matchedField) })),
  })
  .openapi("CustomerSearchResult");

const searchRoute = protectedRoute("business:read", {
  method: "get",
  path: "/api/v1/customers/search",
  tags: ["customers"],
  summary: "Fuzzy search of the tenant's customers: best five first",
  request: {
    query: z.object({
      q: z
        .string()
        .min(1)
        .max(100)
        .refine((q) => q.trim().length > 0, { error: "must not be blank" })
        .openapi({ param: { name: "q", in: "query" }, example: "Raul Sharma" }),
    }),
  },
  responses: { 200: jsonResponse(searchResultSchema, "Matches, best first (at most five)") },
});

export const customerSearchRoutes = publicRouter().openapi(searchRoute, async (c) => {
  const { q } = c.req.valid("query");
  const matches = await searchCustomers(c.get("scope"), q);
  // The same customer shape as `/customers/{id}` (no tenant id, no sound key, ISO times).
  return c.json(
    { matches: matches.map(({ customer, score, matchedOn }) => ({ customer: presentCustomer(customer), score, matchedOn })) },
    200,
  );
});
