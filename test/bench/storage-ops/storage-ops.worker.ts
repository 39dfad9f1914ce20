/**
 * What one storage or RPC operation costs workerd locally, for `test/bench/storage-ops.bench.ts`: each route runs
 * `n` of one kind of operation in a row (the same kinds a call makes at its setup, while it streams and at its end),
 * so the bench can divide workerd's CPU time by the count. No auth, nothing else.
 */
import { DurableObject } from "cloudflare:workers";

interface OpsEnv {
  DB: D1Database;
  KV: KVNamespace;
  OBJECT: DurableObjectNamespace<Store>;
  LIMITER: RateLimit;
}

const ROW = "x".repeat(200);

/** A Durable Object with one table, as a call's object has several. */
export class Store extends DurableObject<OpsEnv> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: OpsEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  }

  async ping(): Promise<number> {
    return 1;
  }

  /** One INSERT, committed when the RPC returns (the output gate holds its answer until then). */
  async insert(): Promise<number> {
    this.sql.exec("INSERT INTO rows (body) VALUES (?)", ROW);
    return 1;
  }

  /** `n` statements inside one RPC: what a statement costs apart from its RPC and commit. */
  async statements(n: number): Promise<number> {
    for (let i = 0; i < n; i++) this.sql.exec("SELECT count(*) AS n FROM rows WHERE id > ?", i).one();
    return n;
  }
}

const OPERATIONS: Record<string, (env: OpsEnv, i: number) => Promise<unknown>> = {
  "request (nothing)": async () => undefined,
  "D1 insert": (env) => env.DB.prepare("INSERT INTO rows (body) VALUES (?)").bind(ROW).run(),
  "D1 read": (env) => env.DB.prepare("SELECT 1 AS one").first(),
  "KV put": (env, i) => env.KV.put(`key-${i}-${crypto.randomUUID()}`, ROW),
  "KV get (missing key)": (env) => env.KV.get("missing"),
  "RPC to an object": (env) => env.OBJECT.get(env.OBJECT.idFromName("one")).ping(),
  "RPC + one committed INSERT": (env) => env.OBJECT.get(env.OBJECT.idFromName("one")).insert(),
  "new object + one committed INSERT": (env) => env.OBJECT.get(env.OBJECT.idFromName(crypto.randomUUID())).insert(),
  // The carrier budget's binding: a Twilio call's voice webhook, media upgrade and status callback each count once.
  "rate limiter limit()": (env) => env.LIMITER.limit({ key: "twilio:AC0" }),
};

export default {
  async fetch(request: Request, env: OpsEnv): Promise<Response> {
    const url = new URL(request.url);
    const n = Math.min(10_000, Math.max(1, Number(url.searchParams.get("n") ?? "1") || 1));
    if (url.pathname === "/setup") {
      await env.DB.exec("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
      return Response.json(Object.keys(OPERATIONS));
    }
    if (url.pathname === "/statements") return Response.json(await env.OBJECT.get(env.OBJECT.idFromName("one")).statements(n));
    const operation = OPERATIONS[url.searchParams.get("op") ?? ""];
    if (!operation) return new Response("unknown op", { status: 404 });
    for (let i = 0; i < n; i++) await operation(env, i);
    return Response.json(n);
  },
};
