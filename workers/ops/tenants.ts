import { hashPassword } from "../identity/passwords.ts";
import { executeSql, querySql, sqlText, type Target } from "./wrangler.ts";

export interface NewTenant {
  name: string;
  adminEmail: string;
  adminPassword: string;
}

export class OperatorError extends Error {}

/**
 * Creates a tenant and its first admin. The inserts are guarded so that nothing is written when the email is
 * taken (no orphan tenant), then the result is read back.
 */
export async function createTenant(target: Target, input: NewTenant): Promise<{ tenantId: string; userId: string }> {
  const email = input.adminEmail.trim().toLowerCase();
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw new OperatorError("--admin-email is not an email address");
  if (input.adminPassword.length < 12) throw new OperatorError("--admin-password must be at least 12 characters");
  if (!input.name.trim()) throw new OperatorError("--name must not be empty");

  const tenantId = crypto.randomUUID();
  const userId = crypto.randomUUID();
  const now = Date.now();
  const hash = await hashPassword(input.adminPassword);
  const emailFree = `NOT EXISTS (SELECT 1 FROM users WHERE email = ${sqlText(email)})`;
  executeSql(
    target,
    [
      `INSERT INTO tenants (id, name, created_at) SELECT ${sqlText(tenantId)}, ${sqlText(input.name.trim())}, ${now} WHERE ${emailFree};`,
      `INSERT INTO users (id, tenant_id, email, role, password_hash, tokens_valid_after, created_at, updated_at)
         SELECT ${sqlText(userId)}, ${sqlText(tenantId)}, ${sqlText(email)}, 'admin', ${sqlText(hash)}, 0, ${now}, ${now}
         WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ${sqlText(tenantId)}) AND ${emailFree};`,
      `INSERT INTO audit_log (id, tenant_id, actor_type, actor_id, action, target_type, target_id, outcome, created_at)
         SELECT ${sqlText(crypto.randomUUID())}, ${sqlText(tenantId)}, 'system', 'operator-cli', 'tenant.create', 'user', ${sqlText(userId)}, 'success', ${now}
         WHERE EXISTS (SELECT 1 FROM users WHERE id = ${sqlText(userId)});`,
    ].join("\n"),
  );
  const created = querySql<{ id: string }>(target, `SELECT id FROM users WHERE id = ${sqlText(userId)}`);
  if (created.length === 0) throw new OperatorError(`a user with email ${email} already exists; nothing was created`);
  return { tenantId, userId };
}

export function findUserByEmail(target: Target, email: string): { id: string; tenant_id: string } | undefined {
  return querySql<{ id: string; tenant_id: string }>(
    target,
    `SELECT id, tenant_id FROM users WHERE email = ${sqlText(email.toLowerCase())}`,
  )[0];
}
