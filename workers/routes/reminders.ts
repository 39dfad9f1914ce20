import { z } from "@hono/zod-openapi";
import { runOnce, type WriteMark } from "../business/idempotency.ts";
import {
  cancelReminder,
  listReminders,
  presentReminder,
  reminderInputSchema,
  reminderSchema,
  scheduleReminder,
  writtenReminder,
} from "../business/reminders/reminders.ts";
import { conflictResponse, errorResponse, jsonBody, jsonResponse, notFoundResponse, protectedRoute } from "../http/openapi.ts";
import { publicRouter } from "../http/router.ts";
import { auditFromRequest } from "../identity/request-audit.ts";
import { creatorOf } from "../shared/db/principal-standing.ts";
import { REMINDER_STATES } from "../shared/db/schema.ts";
import { badRequest } from "../shared/errors.ts";
import { idempotencyHeader } from "./business-schemas.ts";
import { decodeCursor, encodeCursor, pageOf, pageQuery } from "./pagination.ts";

const reminder = reminderSchema.openapi("Reminder");
const idParam = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) });

const createRoute = protectedRoute("reminders:write", {
  method: "post",
  path: "/api/v1/reminders",
  tags: ["business"],
  summary: "Schedule a payment reminder, delivered once at dueAt by SMS, WhatsApp or a call",
  description:
    "The customer needs a phone number. 422 `reminder_in_past` for a dueAt not in the future, `reminder_too_far` beyond a year, " +
    "`customer_unreachable` for a customer without a phone; 404 `customer_not_found`.",
  request: { headers: idempotencyHeader, ...jsonBody(reminderInputSchema.openapi("ReminderInput")) },
  responses: {
    201: jsonResponse(reminder, "Scheduled (or, for a retried Idempotency-Key, the first answer)"),
    ...notFoundResponse,
    ...conflictResponse,
    422: errorResponse("dueAt in the past or too far ahead, the customer cannot be reached, Idempotency-Key reused"),
  },
});

const listRoute = protectedRoute("business:read", {
  method: "get",
  path: "/api/v1/reminders",
  tags: ["business"],
  summary: "The tenant's reminders, soonest due first, filtered by state and customer",
  request: { query: pageQuery.extend({ state: z.enum(REMINDER_STATES).optional(), customerId: z.string().max(64).optional() }) },
  responses: { 200: jsonResponse(pageOf(reminder, "ReminderPage"), "A page of reminders") },
});

const cancelRoute = protectedRoute("reminders:write", {
  method: "delete",
  path: "/api/v1/reminders/{id}",
  tags: ["business"],
  summary: "Cancel a reminder that has not started sending (409 `reminder_not_pending` once it has)",
  request: { params: idParam },
  responses: { 200: jsonResponse(reminder, "Cancelled (or already was)"), ...notFoundResponse, ...conflictResponse },
});

export const reminderRoutes = publicRouter()
  .openapi(createRoute, async (c) => {
    const scope = c.get("scope");
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const write = async (mark?: WriteMark) => {
      const created = await scheduleReminder(c.env, scope, { source: "api", by: creatorOf(c.get("principal")) }, body, mark);
      await auditFromRequest(c, { action: "reminder.schedule", targetType: "reminder", targetId: created.id, outcome: "success" });
      return { status: 201 as const, body: created };
    };
    // A retried POST (same key, same body) answers the first reminder; it never schedules a second message.
    const answer =
      key === undefined
        ? await write()
        : await runOnce(scope, scope.tenantId, "reminders", key, body, {
            write,
            answer: async (reminderId) => ({ status: 201 as const, body: await writtenReminder(c.env, scope, reminderId) }),
          });
    return c.json(answer.body, 201);
  })
  .openapi(listRoute, async (c) => {
    const query = c.req.valid("query");
    const cursor = decodeCursor(query.cursor);
    const [dueAt, id] = cursor ?? [];
    if (query.cursor && (typeof dueAt !== "number" || typeof id !== "string")) throw badRequest("invalid_cursor", "cursor is not valid");
    const rows = await listReminders(c.env, c.get("scope"), {
      state: query.state,
      customerId: query.customerId,
      limit: query.limit + 1,
      after: typeof dueAt === "number" && typeof id === "string" ? { dueAt, id } : undefined,
    });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return c.json(
      { items: page.map(presentReminder), nextCursor: rows.length > query.limit && last ? encodeCursor([last.dueAt, last.id]) : null },
      200,
    );
  })
  .openapi(cancelRoute, async (c) => {
    const cancelled = await cancelReminder(c.env, c.get("scope"), c.req.valid("param").id);
    await auditFromRequest(c, { action: "reminder.cancel", targetType: "reminder", targetId: cancelled.id, outcome: "success" });
    return c.json(cancelled, 200);
  });
