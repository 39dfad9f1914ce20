import { defineConfig } from "drizzle-kit";

// drizzle-kit generates migrations/NNNN_name.sql; wrangler applies them (never at request time).
export default defineConfig({
  dialect: "sqlite",
  schema: "./workers/shared/db/schema.ts",
  out: "./migrations",
});
