/** The prompt shapes of workers/routes/prompts.ts, and the tools a version may allow. */
export interface PromptVersion {
  version: number;
  instructions: string;
  voice: string | null;
  tools: string[] | null;
  createdAt: string;
}

export interface Prompt {
  id: string;
  name: string;
  currentVersion: number;
  current: PromptVersion;
  createdAt: string;
  updatedAt: string;
}

export interface PromptDetail extends Prompt {
  versions: PromptVersion[];
}

export { TOOL_NAMES } from "../../../../workers/shared/vocabulary.ts";
