import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { openTables, type PartTables } from "../../durable-objects/session-tables.ts";

const stub = () => env.CALL_SESSION.get(env.CALL_SESSION.idFromName(`tables-${crypto.randomUUID()}`));

const PARTS: PartTables[] = [
  { names: ["t_one"], ddl: "CREATE TABLE IF NOT EXISTS t_one (id INTEGER PRIMARY KEY, body TEXT NOT NULL);" },
  {
    names: ["t_two", "t_three"],
    ddl: `CREATE TABLE IF NOT EXISTS t_two (key TEXT PRIMARY KEY);
          CREATE INDEX IF NOT EXISTS t_two_idx ON t_two (key);
          CREATE TABLE IF NOT EXISTS t_three (n INTEGER)`,
  },
];

describe("a session object's tables, opened in one statement", () => {
  it("creates every part's tables and indexes, and says the object is empty until any of them holds a row", async () => {
    await runInDurableObject(stub(), (_instance, state) => {
      const sql = state.storage.sql;
      expect(openTables(sql, PARTS)).toEqual({ empty: true });
      const names = sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE name LIKE 't\\_%' ESCAPE '\\' ORDER BY name")
        .toArray()
        .map((row) => row.name);
      expect(names).toEqual(["t_one", "t_three", "t_two", "t_two_idx"]);

      // Any one table holding a row makes the object not empty, whichever part owns it.
      sql.exec("INSERT INTO t_three (n) VALUES (1)");
      expect(openTables(sql, PARTS)).toEqual({ empty: false });
      sql.exec("DELETE FROM t_three");
      expect(openTables(sql, PARTS)).toEqual({ empty: true });
      sql.exec("INSERT INTO t_one (body) VALUES ('x')");
      expect(openTables(sql, PARTS)).toEqual({ empty: false });
    });
  });
});
