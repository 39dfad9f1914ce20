import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyPassword } from "../../workers/identity/passwords.ts";
import { applyMigrations, querySql, type Target } from "../../workers/ops/wrangler.ts";

/** The operator command, run as operators run it, against a throwaway local database. */
const ROOT = join(import.meta.dirname, "../..");
let persistTo: string;
let target: Target;

function admin(...args: string[]) {
  const result = spawnSync(process.execPath, [join(ROOT, "workers/ops/admin.ts"), ...args, "--local", "--persist-to", persistTo], {
    encoding: "utf8",
    cwd: ROOT,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

// Applying every migration runs wrangler in a child process: seconds, more on a loaded machine.
beforeAll(() => {
  persistTo = mkdtempSync(join(tmpdir(), "switchboard-admin-"));
  target = { kind: "local", persistTo };
  applyMigrations(target);
}, 60_000);

afterAll(() => rmSync(persistTo, { recursive: true, force: true }));

describe("npm run admin -- create-tenant", () => {
  it("creates a tenant and its admin, printing one JSON line", async () => {
    const result = admin(
      "create-tenant",
      "--name",
      "Acme O'Brien",
      "--admin-email",
      "Ops@Acme.test",
      "--admin-password",
      "correct horse battery",
    );
    expect(result.status).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const created = JSON.parse(lines[0]!) as { tenantId: string; userId: string };
    const [user] = querySql<{ tenant_id: string; email: string; role: string; password_hash: string }>(
      target,
      `SELECT tenant_id, email, role, password_hash FROM users WHERE id = '${created.userId}'`,
    );
    expect(user).toMatchObject({ tenant_id: created.tenantId, email: "ops@acme.test", role: "admin" });
    expect(await verifyPassword("correct horse battery", user!.password_hash)).toBe(true);
    const [tenant] = querySql<{ name: string }>(target, `SELECT name FROM tenants WHERE id = '${created.tenantId}'`);
    expect(tenant?.name).toBe("Acme O'Brien");
    const audit = querySql<{ action: string }>(target, `SELECT action FROM audit_log WHERE tenant_id = '${created.tenantId}'`);
    expect(audit.map((row) => row.action)).toEqual(["tenant.create"]);
  });

  it("refuses a taken email and writes nothing", () => {
    const before = querySql<{ n: number }>(target, "SELECT COUNT(*) AS n FROM tenants")[0]!.n;
    const result = admin(
      "create-tenant",
      "--name",
      "Copycat",
      "--admin-email",
      "ops@acme.test",
      "--admin-password",
      "another long password",
    );
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("already exists");
    expect(querySql<{ n: number }>(target, "SELECT COUNT(*) AS n FROM tenants")[0]!.n).toBe(before);
  });

  it("explains bad arguments", () => {
    expect(admin("create-tenant", "--name", "X").stderr).toContain("usage:");
    expect(admin("create-tenant", "--name", "X", "--admin-email", "x@y.test", "--admin-password", "short").stderr).toContain("at least 12");
    expect(admin("drop-everything").status).toBe(1);
  });
});
