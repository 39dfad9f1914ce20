import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { unstable_startWorker } from "wrangler";

/**
 * The real Worker (wrangler.toml) started locally by wrangler, on its own throwaway state directory, seeded the
 * way an operator seeds production: `wrangler d1 migrations apply DB --local --persist-to DIR`, then a tenant and
 * its admin created by the operator command (`npm run admin -- create-tenant … --local --persist-to DIR`).
 * `wrangler d1 … --persist-to DIR` and the dev server's `persist: DIR` both keep D1 under DIR/v3/d1, so the worker
 * sees the seeded rows. Seeding finishes before the worker starts: each seeding command runs a runtime of its own on
 * the same directory, and a worker starting beside it now and then failed to open a database it held (SQLITE_BUSY).
 */
/** The project's checkout, where wrangler.toml is. */
export const ROOT = join(import.meta.dirname, "../../..");
/** The project's own wrangler CLI, run with this Node (`process.execPath`). */
export const WRANGLER = join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const run = promisify(execFile);

export interface SeededAdmin {
  tenantId: string;
  userId: string;
  email: string;
  password: string;
}

export interface LocalPlatform {
  /** Where this process reaches the worker, e.g. http://127.0.0.1:41234 (an origin, no trailing slash). */
  url: string;
  /** The worker's DevTools inspector (ws://…), when started with `{ inspector: true }`. */
  inspectorUrl: string | null;
  admin: SeededAdmin;
  stop(): Promise<void>;
}

/**
 * wrangler's dev options for a worker started in-process (the platform here, the benches' relay): loopback only on any
 * free port, no inspector unless asked (a profiler), no file watching, its state under `persistTo`.
 */
export function localDevOptions(persistTo: string, inspector = false) {
  return {
    server: { hostname: "127.0.0.1", port: 0 },
    inspector: inspector ? { hostname: "127.0.0.1", port: 0 } : (false as const),
    watch: false,
    liveReload: false,
    persist: persistTo,
  };
}

/** Settings the worker is started with, by the contract's names; secrets are marked so wrangler stops asking for them. */
export async function startLocalPlatform(
  settings: Record<string, string>,
  secretNames: readonly string[],
  options: { inspector?: boolean } = {},
): Promise<LocalPlatform> {
  const persistTo = mkdtempSync(join(tmpdir(), "switchboard-e2e-"));
  let worker: Awaited<ReturnType<typeof unstable_startWorker>> | undefined;
  try {
    const admin = await seed(persistTo);
    const bindings = Object.fromEntries(
      Object.entries(settings).map(([name, value]) => [name, { type: secretNames.includes(name) ? "secret_text" : "plain_text", value }]),
    );
    worker = await unstable_startWorker({
      config: join(ROOT, "wrangler.toml"),
      bindings,
      // State in the seeded directory.
      dev: localDevOptions(persistTo, options.inspector),
    });
    await worker.ready;
    const url = (await worker.url).origin;
    const inspectorUrl = options.inspector ? ((await worker.inspectorUrl)?.href ?? null) : null;
    const running = worker;
    return {
      url,
      inspectorUrl,
      admin,
      async stop() {
        await running.dispose();
        // BENCH_KEEP_STATE=1 keeps it, to read afterwards (the local trace store's spans, with the load bench's
        // --trace-collector: test/bench/FINDINGS.md, item 20).
        if (process.env.BENCH_KEEP_STATE === "1") console.log(`local state kept in ${persistTo}`);
        else rmSync(persistTo, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await worker?.dispose();
    rmSync(persistTo, { recursive: true, force: true });
    throw error;
  }
}

async function seed(persistTo: string): Promise<SeededAdmin> {
  // Generous: each migration starts a runtime of its own, and on a machine shared by several test runs twenty of them
  // took over two minutes (the seeding was killed half-way and the run failed before any test).
  // Wrangler's normal output whatever level the caller's own wrangler logs at (the benches quiet theirs): it is read here.
  const { WRANGLER_LOG: _callersLevel, ...env } = process.env;
  const options = { cwd: ROOT, encoding: "utf8" as const, timeout: 300_000, env: { ...env, WRANGLER_SEND_METRICS: "false" } };
  await run(process.execPath, [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo], options);
  const email = "admin@e2e.switchboard.test";
  const password = "e2e-admin-password-0123";
  const { stdout } = await run(
    process.execPath,
    [
      join(ROOT, "workers/ops/admin.ts"),
      "create-tenant",
      "--name",
      "E2E",
      "--admin-email",
      email,
      "--admin-password",
      password,
      "--local",
      "--persist-to",
      persistTo,
    ],
    options,
  );
  const created = JSON.parse(stdout.trim()) as { tenantId: string; userId: string };
  return { ...created, email, password };
}

/** A signed-in API client for one user of the platform. */
export interface ApiClient {
  request(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

export async function signIn(baseUrl: string, email: string, password: string): Promise<ApiClient> {
  const authorization = `Bearer ${await accessTokenFor(baseUrl, email, password)}`;
  return {
    async request(method, path, body) {
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: { Authorization: authorization, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      return { status: response.status, body: text ? (JSON.parse(text) as unknown) : undefined };
    },
  };
}

/** A fresh access token for the user, through the login route. */
export async function accessTokenFor(baseUrl: string, email: string, password: string): Promise<string> {
  const attempt = () =>
    fetch(`${baseUrl}/api/v1/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
  let login = await attempt();
  // Ten sign-ins a minute from one address, and every test signs in from 127.0.0.1: wait the limit out, twice at most.
  for (let retries = 0; login.status === 429 && retries < 2; retries++) {
    await new Promise((resolve) => setTimeout(resolve, (Number(login.headers.get("Retry-After")) || 60) * 1000 + 1000));
    login = await attempt();
  }
  const tokens = (await login.json()) as { accessToken?: string };
  if (login.status !== 200 || !tokens.accessToken) throw new Error(`login failed: HTTP ${login.status} ${JSON.stringify(tokens)}`);
  return tokens.accessToken;
}

/** Re-checks `probe` until it yields a value; bounded, so a platform that never gets there fails the test. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000, intervalMs = 100): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (performance.now() >= deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
