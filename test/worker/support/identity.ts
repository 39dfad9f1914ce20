import { env, exports } from "cloudflare:workers";
import { hashPassword } from "../../../workers/identity/passwords.ts";
import { database } from "../../../workers/shared/db/client.ts";
import { type Role, tenants, users } from "../../../workers/shared/db/schema.ts";

/**
 * Test fixtures written straight to D1 (the same rows the operator CLI writes), plus helpers that call the real
 * Worker. Fixture passwords use a low PBKDF2 count to keep the suite fast; the stored hash records its count, so
 * verification runs the real code path.
 */
export const PASSWORD = "correct horse battery staple";
const FIXTURE_ITERATIONS = 1_000;

export async function createTenant(name = "Tenant"): Promise<string> {
  const id = crypto.randomUUID();
  await database(env.DB).insert(tenants).values({ id, name, createdAt: Date.now() });
  return id;
}

export async function createUser(tenantId: string, role: Role, password = PASSWORD) {
  const id = crypto.randomUUID();
  const email = `${role}-${id.slice(0, 8)}@example.test`;
  const now = Date.now();
  await database(env.DB)
    .insert(users)
    .values({ id, tenantId, email, role, passwordHash: await hashPassword(password, FIXTURE_ITERATIONS), createdAt: now, updatedAt: now });
  return { id, email, password, tenantId, role };
}

export interface Tokens {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

/** A unique client IP per caller keeps per-IP login limits from coupling unrelated tests. */
export const randomIp = () => `198.51.100.${Math.floor(Math.random() * 250) + 1}`;

export async function login(email: string, password = PASSWORD, ip = randomIp()): Promise<Tokens> {
  const response = await api("/api/v1/auth/login", { method: "POST", body: { email, password }, ip });
  if (response.status !== 200) throw new Error(`login failed: ${response.status} ${await response.text()}`);
  return response.json();
}

export async function userWithToken(tenantId: string, role: Role) {
  const user = await createUser(tenantId, role);
  const tokens = await login(user.email);
  return { ...user, ...tokens };
}

export interface ApiOptions {
  method?: string;
  token?: string;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
  ip?: string;
}

export function api(path: string, options: ApiOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { "CF-Connecting-IP": options.ip ?? randomIp(), ...options.headers };
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["Content-Type"] ??= "application/json";
  }
  return exports.default.fetch(`https://switchboard.test${path}`, { method: options.method ?? "GET", headers, body });
}

export async function errorOf(response: Response): Promise<{ code: string; message: string; correlationId: string }> {
  const body = (await response.json()) as { error: { code: string; message: string; correlationId: string } };
  return body.error;
}
