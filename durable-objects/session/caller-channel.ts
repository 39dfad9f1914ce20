import type { PromptRef } from "../../workers/shared/db/prompts.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import type { AudioFormat } from "../media/audio/audio-format.ts";
import type { CallerLeg } from "../media/caller-leg.ts";

/** Who the session is, whichever channel carries it: what the voice session and the live sockets are told. */
export interface SessionIdentity {
  channel: "phone" | "web";
  sessionId: string;
  tenantId: string;
  provider: ProviderName;
  instructions: string | null;
  /** The prompt version the session runs (its voice and tool allow-list apply), or null. */
  prompt: PromptRef | null;
  metadata: Record<string, string | number | boolean>;
  correlationId: string;
  ended: boolean;
  /** The other party's number on a phone call (the caller inbound, the called party outbound); none on the web. */
  remoteNumber: string | null;
}

/**
 * The caller's side of a session — a phone call through a carrier, or a browser on /live — behind one interface, so
 * the object conducting the session asks it rather than checking which one it has.
 */
export interface CallerChannel {
  identity(): SessionIdentity;
  /** The audio the caller's leg carries. */
  readonly callAudio: AudioFormat;
  /** The leg agent audio is sent to, or null while the caller is not connected. */
  leg(): CallerLeg | null;
  /** The agent ended the conversation. */
  hangup(reason: string): Promise<void>;
  /** The agent asked for a human; answers the tool's JSON result. */
  transfer(reason: string): Promise<string>;
  /** The session runs on another provider now: its record (and through it D1) says so. */
  providerChanged(provider: ProviderName): void;
}
