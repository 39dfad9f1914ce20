import type { Context } from "hono";
import type { AppEnv } from "../http/context.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";
import { type AuditEntry, auditStatement } from "./audit.ts";

/** An audit statement stamped with the request's actor, client IP and correlation id. */
export function auditFromRequest(
  c: Context<AppEnv>,
  entry: Omit<AuditEntry, "ip" | "correlationId" | "actorType" | "actorId"> & Partial<Pick<AuditEntry, "actorType" | "actorId">>,
  scope: TenantScope = c.get("scope"),
) {
  const principal = c.get("principal");
  return auditStatement(scope, {
    actorType: principal?.kind ?? "anonymous",
    actorId: principal?.id ?? null,
    ...entry,
    ip: c.get("clientIp"),
    correlationId: c.get("correlationId"),
  });
}
