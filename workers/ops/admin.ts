import { parseArgs } from "node:util";
import { createTenant, OperatorError } from "./tenants.ts";
import type { Target } from "./wrangler.ts";

/**
 * Operator commands against a deployed (--remote) or local (--local [--persist-to DIR]) database.
 *   npm run admin -- create-tenant --name <name> --admin-email <email> --admin-password <password> --local|--remote
 * Prints one JSON line on success; errors go to stderr with exit code 1.
 */
const USAGE =
  "usage: npm run admin -- create-tenant --name <name> --admin-email <email> --admin-password <password> (--local [--persist-to <dir>] | --remote)";

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      "admin-email": { type: "string" },
      "admin-password": { type: "string" },
      local: { type: "boolean", default: false },
      remote: { type: "boolean", default: false },
      "persist-to": { type: "string" },
    },
  });
  if (positionals[0] !== "create-tenant") throw new OperatorError(USAGE);
  if (values.local === values.remote) throw new OperatorError("give exactly one of --local or --remote");
  if (values.remote && values["persist-to"]) throw new OperatorError("--persist-to goes with --local");
  const { name, "admin-email": adminEmail, "admin-password": adminPassword } = values;
  if (!name || !adminEmail || !adminPassword) throw new OperatorError(USAGE);
  const target: Target = values.remote ? { kind: "remote" } : { kind: "local", persistTo: values["persist-to"] };
  const created = await createTenant(target, { name, adminEmail, adminPassword });
  process.stdout.write(`${JSON.stringify(created)}\n`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`admin: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
