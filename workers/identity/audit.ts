import { auditLog } from "../db/schema";
import type { Database } from "../db/client";

export interface AuditEntry {
  tenantId: string;
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
export function auditStatement(db: Database, entry: AuditEntry) {
  return db.insert(auditLog).values({
    id: crypto.randomUUID(),
    tenantId: entry.tenantId,
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
