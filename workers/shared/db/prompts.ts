import { and, eq, type SQL } from "drizzle-orm";
import { AppError } from "../errors.ts";
import { database } from "./client.ts";
import { prompts, promptVersions } from "./schema.ts";
import type { TenantScope } from "./tenant-scope.ts";

/**
 * Versioned agent prompts: what a session runs is resolved once, at its start, from the prompt's current version, and
 * recorded on the session as (prompt id, version). Versions are immutable, so that pair always means one text.
 */

export { TOOL_NAMES } from "../vocabulary.ts";

/**
 * The prompt version a session runs, kept with the session in its object (the instructions are kept apart, as the
 * session's own): the id and version go to its D1 row, the voice and tool allow-list to its provider sessions.
 */
export interface PromptRef {
  id: string;
  version: number;
  voice: string | null;
  /** Tool names the agent may use; null: all of them. */
  tools: string[] | null;
}

/** What a session takes from its prompt. */
export interface ResolvedPrompt extends PromptRef {
  instructions: string;
}

/** The part of a resolved prompt a session's object keeps. */
export const promptRefOf = ({ instructions: _instructions, ...ref }: ResolvedPrompt): PromptRef => ref;

/** The joined columns of a prompt's current version (also the number route's lookup uses them: directory.ts). */
export const currentVersionFields = {
  id: prompts.id,
  version: promptVersions.version,
  instructions: promptVersions.instructions,
  voice: promptVersions.voice,
  tools: promptVersions.tools,
};

export const currentVersionJoin = and(eq(promptVersions.promptId, prompts.id), eq(promptVersions.version, prompts.currentVersion));

/** The tenant's prompts (those matching `conditions`) joined to their current versions. */
export function promptsWithCurrentVersion(env: Env, scope: TenantScope, ...conditions: (SQL | undefined)[]) {
  return database(env.DB)
    .select()
    .from(prompts)
    .innerJoin(promptVersions, currentVersionJoin)
    .where(scope.where(prompts, ...conditions))
    .$dynamic();
}

/** The prompt's current version, or null when the tenant has no such prompt (another tenant's is not found). */
export async function currentPrompt(env: Env, scope: TenantScope, promptId: string): Promise<ResolvedPrompt | null> {
  const [row] = await database(env.DB)
    .select(currentVersionFields)
    .from(prompts)
    .innerJoin(promptVersions, currentVersionJoin)
    .where(scope.where(prompts, eq(prompts.id, promptId)))
    .limit(1);
  return row ?? null;
}

/** As currentPrompt, for a request that names a prompt: one it cannot use is a 422 (a body field, not the path). */
export async function requirePrompt(env: Env, scope: TenantScope, promptId: string): Promise<ResolvedPrompt> {
  const prompt = await currentPrompt(env, scope, promptId);
  if (!prompt) throw new AppError(422, "unknown_prompt", "promptId names no prompt of this tenant", "validation");
  return prompt;
}
