import type { Role } from "../shared/db/schema.ts";

/**
 * The permission matrix. Every API route declares exactly one permission (or `public`); the README prints this
 * table, and test/worker/role-matrix walks every route in the OpenAPI document against it.
 */
export const PERMISSIONS = {
  "users:read": ["admin"],
  "users:write": ["admin"],
  "api_keys:manage": ["admin"],
  "audit:read": ["admin"],
  "phone_numbers:read": ["admin", "supervisor"],
  "phone_numbers:write": ["admin"],
  "calls:read": ["admin", "supervisor", "agent", "viewer"],
  "calls:create": ["admin", "supervisor", "agent"],
  "calls:control": ["admin", "supervisor", "agent"],
  "sessions:read": ["admin", "supervisor", "agent", "viewer"],
  "sessions:create": ["admin", "supervisor", "agent"],
  "sessions:switch": ["admin", "supervisor", "agent"],
  "sessions:supervise": ["admin", "supervisor"],
  "providers:read": ["admin", "supervisor", "agent", "viewer"],
  "self:manage": ["admin", "supervisor", "agent", "viewer"],
  "tenant_settings:read": ["admin", "supervisor", "agent", "viewer"],
  "tenant_settings:write": ["admin"],
  // Business engine: viewers read; agents and up create customers, invoices, payments and reminders; admins manage
  // the product catalogue (prices are the shop's policy, not an agent's call).
  "business:read": ["admin", "supervisor", "agent", "viewer"],
  "customers:write": ["admin", "supervisor", "agent"],
  "invoices:write": ["admin", "supervisor", "agent"],
  "payments:write": ["admin", "supervisor", "agent"],
  "reminders:write": ["admin", "supervisor", "agent"],
  "products:write": ["admin"],
  // Agents read the prompts their calls run (to know what the agent was told); viewers see sessions, not scripts.
  // Changing what every future call is told is a supervisor's or an admin's decision.
  "prompts:read": ["admin", "supervisor", "agent"],
  "prompts:write": ["admin", "supervisor"],
  // Everything held about one person in one document: the widest read there is, so admins only.
  "privacy:manage": ["admin"],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

export function roleHas(role: Role, permission: Permission): boolean {
  return (PERMISSIONS[permission] as readonly Role[]).includes(role);
}
