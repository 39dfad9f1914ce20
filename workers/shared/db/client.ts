import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import { timedD1 } from "../observability/timed-d1.ts";
import * as schema from "./schema.ts";

export type Database = DrizzleD1Database<typeof schema> & { $client: D1Database };

const clients = new WeakMap<D1Database, Database>();

/**
 * The raw database handle. Only the db/ and identity modules use it (tenant lookup by email or API key is
 * cross-tenant by nature); request handlers get a TenantScope instead (see tenant-scope.ts).
 */
export function database(binding: D1Database): Database {
  let client = clients.get(binding);
  if (!client) {
    client = drizzle(timedD1(binding), { schema });
    clients.set(binding, client);
  }
  return client;
}
