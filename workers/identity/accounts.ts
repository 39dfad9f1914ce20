import { eq } from "drizzle-orm";
import { database } from "../shared/db/client.ts";
import { phoneNumbers, users } from "../shared/db/schema.ts";

/** Emails are unique across tenants (login is by email alone), so this check is deliberately cross-tenant. */
export async function emailInUse(env: Env, email: string): Promise<boolean> {
  const [row] = await database(env.DB).select({ id: users.id }).from(users).where(eq(users.email, email)).limit(1);
  return row !== undefined;
}

export async function userByEmail(env: Env, email: string) {
  const [row] = await database(env.DB).select().from(users).where(eq(users.email, email)).limit(1);
  return row;
}

export async function userById(env: Env, id: string) {
  const [row] = await database(env.DB).select().from(users).where(eq(users.id, id)).limit(1);
  return row;
}

/** Phone numbers are unique across tenants, so this check is deliberately cross-tenant too. */
export async function numberInUse(env: Env, e164: string): Promise<boolean> {
  const [row] = await database(env.DB).select({ id: phoneNumbers.id }).from(phoneNumbers).where(eq(phoneNumbers.e164, e164)).limit(1);
  return row !== undefined;
}
