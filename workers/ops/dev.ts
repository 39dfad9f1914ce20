import { spawn, spawnSync } from "node:child_process";
import { randomBytes, webcrypto } from "node:crypto";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createTenant, findUserByEmail } from "./tenants.ts";
import { applyMigrations, type Target } from "./wrangler.ts";

/**
 * `npm run dev`: the whole platform on this machine, offline. Writes .dev.vars with fresh local secrets the first
 * time, applies the D1 migrations to the local database, seeds a demo tenant and admin (printed), then runs
 * `wrangler dev`. With no provider keys configured, sessions use the offline `local` provider. The web console is
 * built first (wrangler serves it at http://localhost:8787/) and Vite serves it with hot reload at
 * http://localhost:5173/console/, forwarding API calls and `/live` sockets to wrangler.
 */
const ROOT = join(import.meta.dirname, "../..");
const DEV_VARS = join(ROOT, ".dev.vars");
const LOCAL: Target = { kind: "local" };
export const DEMO = { name: "Demo", email: "admin@demo.switchboard.local", password: "switchboard-demo-admin" };

async function localSecrets(): Promise<string> {
  const pair = (await webcrypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const { kty, crv, x, d } = await webcrypto.subtle.exportKey("jwk", pair.privateKey);
  const signingKeys = JSON.stringify({ keys: [{ kty, crv, x, d, kid: `dev-${Date.now()}` }] });
  const empty = [
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TELNYX_API_KEY",
    "TELNYX_PUBLIC_KEY",
    "TELNYX_CONNECTION_ID",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "DEEPGRAM_API_KEY",
  ];
  return [
    "# Local secrets for `npm run dev`, generated once. Never commit this file.",
    `JWT_SIGNING_KEYS='${signingKeys}'`,
    `METRICS_TOKEN=${randomBytes(24).toString("hex")}`,
    ...Object.values(generatedSecretLines).map((line) => line()),
    "# Local carrier simulators connect from this machine, not from Telnyx's ranges.",
    "TELNYX_IP_ALLOWLIST=127.0.0.0/8,::1/128",
    ...empty.map((name) => `${name}=`),
    "",
  ].join("\n");
}

/** Random secrets of the platform's own, by name: a .dev.vars written before one of them existed gets it added. */
const generatedSecretLines = {
  MEDIA_STREAM_SECRET: () => `MEDIA_STREAM_SECRET=${randomBytes(32).toString("hex")}`,
  RECORDING_SIGNING_KEY: () => `RECORDING_SIGNING_KEY=${randomBytes(32).toString("hex")}`,
};

async function main(): Promise<void> {
  if (!existsSync(DEV_VARS)) {
    writeFileSync(DEV_VARS, await localSecrets(), { mode: 0o600 });
    console.log("wrote .dev.vars with fresh local signing keys");
  } else {
    const current = readFileSync(DEV_VARS, "utf8");
    for (const [name, line] of Object.entries(generatedSecretLines)) {
      if (!new RegExp(`^${name}=`, "m").test(current)) appendFileSync(DEV_VARS, `${line()}\n`);
    }
  }
  applyMigrations(LOCAL);
  const existing = findUserByEmail(LOCAL, DEMO.email);
  const demo = existing
    ? { tenantId: existing.tenant_id, userId: existing.id }
    : await createTenant(LOCAL, { name: DEMO.name, adminEmail: DEMO.email, adminPassword: DEMO.password });
  console.log(`demo tenant ${demo.tenantId}; sign in with ${DEMO.email} / ${DEMO.password}`);
  const vite = join(ROOT, "node_modules/vite/bin/vite.js");
  const consoleConfig = join(ROOT, "console/vite.config.ts");
  const built = spawnSync(process.execPath, [vite, "build", "--config", consoleConfig, "--logLevel", "warn"], {
    stdio: "inherit",
    cwd: ROOT,
  });
  if (built.status !== 0) throw new Error("the web console did not build");
  const hot = spawn(process.execPath, [vite, "--config", consoleConfig], { stdio: "inherit", cwd: ROOT });
  console.log("web console: http://localhost:8787/ (as deployed), http://localhost:5173/console/ (hot reload)");
  const dev = spawn(process.execPath, [join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "dev", ...process.argv.slice(2)], {
    stdio: "inherit",
    cwd: ROOT,
  });
  dev.on("exit", (code) => {
    hot.kill();
    process.exit(code ?? 0);
  });
}

main().catch((error: unknown) => {
  console.error(`dev: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
