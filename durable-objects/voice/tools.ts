import { z } from "zod";
import { reasonOf } from "../../workers/shared/errors.ts";
import type { PartTables } from "../session-tables.ts";
import type { Books } from "./business-tools.ts";
import type { ConversationItem, ToolDefinition } from "./providers/provider.ts";

/**
 * The session's tools: one registry, exposed to every provider in its own function-calling format by the adapters,
 * and a durable log of every call keyed by the provider's call id, so a call repeated (reconnect, switch, a
 * provider retry) returns its first result instead of acting twice. The shop's tools are in business-tools.ts.
 */
export interface ToolHost {
  /** Hangs up once the agent's last words have played; resolves with what to tell the model. */
  endCall(reason: string): Promise<string>;
  transferToHuman(reason: string): Promise<string>;
  /** The call's tenant's books, acting as the voice agent (business-tools.ts); null once the session is gone. */
  business(): Books | null;
}

export interface Tool<A extends z.ZodType> {
  definition: ToolDefinition;
  args: A;
  execute(args: z.output<A>, host: ToolHost): Promise<string>;
}

export const tool = <A extends z.ZodType>(t: Tool<A>) => t as unknown as Tool<z.ZodType>;

const reasonArgs = z.object({ reason: z.string().max(500).optional() });

export const BUILTIN_TOOLS = [
  tool({
    definition: {
      name: "end_call",
      description: "End the phone call. Say goodbye first; the line closes once your last words have played.",
      parameters: {
        type: "object",
        properties: { reason: { type: "string", description: "Why the call ends" } },
        additionalProperties: false,
      },
    },
    args: reasonArgs,
    execute: (args, host) => host.endCall(args.reason ?? "agent_ended"),
  }),
  tool({
    definition: {
      name: "transfer_to_human",
      description: "Transfer the caller to a human agent when they ask for a person or you cannot help.",
      parameters: {
        type: "object",
        properties: { reason: { type: "string", description: "Why a human is needed" } },
        additionalProperties: false,
      },
    },
    args: reasonArgs,
    execute: (args, host) => host.transferToHuman(args.reason ?? "caller_request"),
  }),
];

const MAX_ARGUMENT_CHARS = 16_000;
const MAX_RESULT_CHARS = 16_000;

export interface ToolOutcome {
  result: string;
  status: "completed" | "failed";
  /** True when the call id was seen before: the stored result is returned and nothing runs again. */
  replayed: boolean;
}

export const TOOL_CALL_TABLES: PartTables = {
  names: ["tool_calls"],
  ddl: `CREATE TABLE IF NOT EXISTS tool_calls (call_id TEXT PRIMARY KEY, name TEXT NOT NULL, arguments TEXT NOT NULL,
        status TEXT NOT NULL, result TEXT, at INTEGER NOT NULL)`,
};

/** Tools by name, made once per isolate and shared by every call's runner. */
export const toolIndex = (tools: ReadonlyArray<Tool<z.ZodType>>): ReadonlyMap<string, Tool<z.ZodType>> =>
  new Map(tools.map((t) => [t.definition.name, t]));

export class ToolRunner {
  /** The session's prompt's allow-list (null: every tool): the others are neither offered nor run. */
  private allowed: ReadonlySet<string> | null = null;

  /** False while the session has stored no call (a new object's, until its first): history and counts need no query. */
  private holdsCalls: boolean;

  /** `empty`: the object has stored nothing yet (session-tables.ts). */
  constructor(
    private readonly sql: SqlStorage,
    private readonly tools: ReadonlyMap<string, Tool<z.ZodType>>,
    empty = false,
  ) {
    this.holdsCalls = !empty;
  }

  /** Restricts the session to these tools (a prompt's allow-list); null lifts the restriction. */
  limitTo(names: readonly string[] | null): void {
    this.allowed = names && new Set(names);
  }

  definitions(): ToolDefinition[] {
    return [...this.tools.values()].filter((t) => this.allows(t.definition.name)).map((t) => t.definition);
  }

  private allows(name: string): boolean {
    return this.allowed === null || this.allowed.has(name);
  }

  async run(callId: string, name: string, rawArguments: string, host: ToolHost): Promise<ToolOutcome> {
    const previous = this.sql
      .exec<{ status: string; result: string | null }>("SELECT status, result FROM tool_calls WHERE call_id = ?", callId)
      .toArray()[0];
    if (previous && previous.status !== "started") {
      return { result: previous.result ?? "", status: previous.status === "completed" ? "completed" : "failed", replayed: true };
    }
    if (previous) return { result: JSON.stringify({ error: "already running" }), status: "failed", replayed: true };
    this.holdsCalls = true;
    this.sql.exec(
      "INSERT INTO tool_calls (call_id, name, arguments, status, at) VALUES (?, ?, ?, 'started', ?)",
      callId,
      name,
      rawArguments.slice(0, MAX_ARGUMENT_CHARS),
      Date.now(),
    );
    const outcome = await this.execute(name, rawArguments, host);
    this.sql.exec("UPDATE tool_calls SET status = ?, result = ? WHERE call_id = ?", outcome.status, outcome.result, callId);
    return { ...outcome, replayed: false };
  }

  /** Finished calls, oldest first, for replaying the conversation into a new provider session. */
  history(limit = 50): Array<{ at: number; item: ConversationItem }> {
    if (!this.holdsCalls) return [];
    return this.sql
      .exec<{ call_id: string; name: string; arguments: string; result: string | null; at: number }>(
        "SELECT call_id, name, arguments, result, at FROM (SELECT * FROM tool_calls WHERE status != 'started' ORDER BY at DESC LIMIT ?) ORDER BY at",
        limit,
      )
      .toArray()
      .map((row) => ({
        at: row.at,
        item: { kind: "tool", callId: row.call_id, name: row.name, arguments: row.arguments, result: row.result ?? "" },
      }));
  }

  /** How many calls of the session failed (the escalation rules count them again after a restart). */
  failedCount(): number {
    if (!this.holdsCalls) return 0;
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM tool_calls WHERE status = 'failed'").one().n;
  }

  private async execute(name: string, rawArguments: string, host: ToolHost): Promise<Omit<ToolOutcome, "replayed">> {
    // A tool outside the allow-list is unknown to this session, even if a provider names it anyway.
    const t = this.allows(name) ? this.tools.get(name) : undefined;
    if (!t) return failed(`unknown tool ${name.slice(0, 64)}`);
    let parsedJson: unknown;
    try {
      parsedJson = rawArguments.trim() === "" ? {} : JSON.parse(rawArguments);
    } catch {
      return failed("arguments are not JSON");
    }
    const args = t.args.safeParse(parsedJson);
    if (!args.success)
      return failed(`invalid arguments: ${args.error.issues.map((issue) => issue.path.join(".") || issue.message).join(", ")}`);
    try {
      return { result: (await t.execute(args.data, host)).slice(0, MAX_RESULT_CHARS), status: "completed" };
    } catch (error) {
      return failed(reasonOf(error, "tool failed"));
    }
  }
}

const failed = (message: string) => ({ result: JSON.stringify({ error: message }), status: "failed" as const });
