import { auditLog } from "../shared/db/schema.ts";
import type { TenantScope } from "../shared/db/tenant-scope.ts";

export interface AuditEntry {
  actorType: "user" | "api_key" | "system" | "anonymous";
  actorId?: string | null;
  action: string;
  targetType?: string;
  targetId?: string;
  outcome: "success" | "failure";
  ip?: string;
  correlationId?: string;
  details?: Record<string, unknown>;
}

/** The audit insert as a statement, so it can join the batch of the change it records (one transaction). */
export function auditStatement(scope: TenantScope, entry: AuditEntry) {
  return scope.insert(auditLog, {
    id: crypto.randomUUID(),
    actorType: entry.actorType,
    actorId: entry.actorId ?? null,
    action: entry.action,
    targetType: entry.targetType ?? null,
    targetId: entry.targetId ?? null,
    outcome: entry.outcome,
    ip: entry.ip ?? null,
    correlationId: entry.correlationId ?? null,
    details: entry.details ?? null,
    createdAt: Date.now(),
  });
}
