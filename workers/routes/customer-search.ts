import { z } from "@hono/zod-openapi";
import { searchCustomers } from "../business/customer-search.ts";
import { jsonResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";

/**
 * `GET /api/v1/customers/search?q=`: the tenant's best five customers for what a person typed or said (a name
 * misheard or misspelt, a nickname, the last digits of a phone, an email), each with a score and what matched.
 * Mounted before `/api/v1/customers/{id}` so "search" is never read as an id.
 */
const matchedField = z.enum(["name", "nickname", "phone", "email", "phonetic"]);

const customerSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    nickname: z.string().nullable(),
    phone: z.string().nullable(),
    email: z.string().nullable(),
    language: z.string().nullable(),
    notes: z.string().nullable(),
    balance: z.number().int().openapi({ description: "What the customer owes, in the minor unit of the tenant's currency" }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("CustomerSearchHit");

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
  const matches = await searchCustomers(c.env.DB, c.get("scope").tenantId, q);
  return c.json(
    {
      matches: matches.map(
        ({ customer: { tenantId: _tenant, phonetic: _phonetic, createdAt, updatedAt, ...customer }, score, matchedOn }) => ({
          customer: { ...customer, createdAt: new Date(createdAt).toISOString(), updatedAt: new Date(updatedAt).toISOString() },
          score,
          matchedOn,
        }),
      ),
    },
    200,
  );
});
