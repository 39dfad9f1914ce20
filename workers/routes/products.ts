import { productChange, productInput } from "../business/engine.ts";
import { conflictResponse, errorResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { engineFor, idParam, productSchema } from "./business-schemas.ts";
import { pageOf, pageQuery } from "./pagination.ts";

/**
 * The product catalogue (`/api/v1/products`). Prices are the shop's policy, so only admins write them, and each
 * change is audited (which product, which fields; never the prices themselves).
 */
const createRoute = protectedRoute("products:write", {
  method: "post",
  path: "/api/v1/products",
  tags: ["business"],
  summary: "Add a product",
  request: jsonBody(productInput.openapi("ProductInput")),
  responses: { 201: jsonResponse(productSchema, "Created"), ...conflictResponse, 422: errorResponse("Price out of range") },
});

const listRoute = protectedRoute("business:read", {
  method: "get",
  path: "/api/v1/products",
  tags: ["business"],
  summary: "The catalogue by name, a page at a time",
  request: { query: pageQuery },
  responses: { 200: jsonResponse(pageOf(productSchema, "ProductPage"), "Products") },
});

const patchRoute = protectedRoute("products:write", {
  method: "patch",
  path: "/api/v1/products/{id}",
  tags: ["business"],
  summary: "Change a product (existing invoices keep the price they were written with)",
  request: { params: idParam, ...jsonBody(productChange.openapi("ProductChange")) },
  responses: {
    200: jsonResponse(productSchema, "The product after the change"),
    ...notFoundResponse,
    ...conflictResponse,
    422: errorResponse("Price out of range"),
  },
});

export const productRoutes = publicRouter()
  .openapi(createRoute, async (c) => {
    const product = await engineFor(c).createProduct(c.req.valid("json"));
    await auditFromRequest(c, { action: "product.create", targetType: "product", targetId: product.id, outcome: "success" });
    return c.json(product, 201);
  })
  .openapi(listRoute, async (c) => c.json(await engineFor(c).listProducts(c.req.valid("query")), 200))
  .openapi(patchRoute, async (c) => {
    const change = c.req.valid("json");
    const product = await engineFor(c).updateProduct(c.req.valid("param").id, change);
    await auditFromRequest(c, {
      action: "product.update",
      targetType: "product",
      targetId: product.id,
      outcome: "success",
      details: { fields: Object.keys(change) },
    });
    return c.json(product, 200);
  });
