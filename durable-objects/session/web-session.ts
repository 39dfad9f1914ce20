import { eq } from "drizzle-orm";
import type { PromptRef } from "../../workers/shared/db/prompts.ts";
import { sessions } from "../../workers/shared/db/schema.ts";
import { tenantScopeFor } from "../../workers/shared/db/tenant-scope.ts";
import { BROWSER_AUDIO_RATE } from "../../workers/shared/live-protocol.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import type { LiveSockets } from "../live/live-sockets.ts";
import { base64Capacity, decodeBase64Into } from "../media/audio/pcm16.ts";
import type { CallerLeg } from "../media/caller-leg.ts";

/**
 * A web session: the caller is a browser on `/live` (role caller) rather than a carrier leg. Its record lives in the
 * object's storage (the Worker wrote the D1 row when it created the session); the object marks it ended in D1.
 */
export interface WebSessionRecord {
  sessionId: string;
  tenantId: string;
  provider: ProviderName;
  instructions: string | null;
  /** The prompt version the session runs; absent on records written before prompts existed. */
  prompt?: PromptRef | null;
  metadata: SessionMetadata;
  correlationId: string;
  createdAt: number;
  status: "active" | "ended";
  endedAt: number | null;
}

export type SessionMetadata = Record<string, string | number | boolean>;

/** The instructions a provider is given: the session's own, then the session's context, so every provider (and
 * every provider after a switch) knows who it is talking to. */
export function instructionsWithContext(instructions: string, metadata: SessionMetadata): string {
  const entries = Object.entries(metadata);
  if (entries.length === 0) return instructions;
  return `${instructions}\n\nSession context:\n${entries.map(([key, value]) => `- ${key}: ${String(value)}`).join("\n")}`;
}

export type OpenWebSessionInput = Omit<WebSessionRecord, "status" | "endedAt" | "createdAt">;

const KEY = "web_session";
const CALLER_LEFT_KEY = "web_session_caller_left_at";
/** A web session whose caller left ends this long after, unless the browser comes back (a reload, a network blip). */
export const CALLER_GRACE_MS = 30_000;

export class WebSessionStore {
  record: WebSessionRecord | null;
  /** When the browser caller's socket last closed with none left (stored: the grace period outlives an eviction). */
  callerLeftAt: number | null;

  constructor(private readonly kv: SyncKvStorage) {
    this.record = kv.get<WebSessionRecord>(KEY) ?? null;
    this.callerLeftAt = kv.get<number>(CALLER_LEFT_KEY) ?? null;
  }

  callerLeft(): void {
    this.callerLeftAt = Date.now();
    this.kv.put(CALLER_LEFT_KEY, this.callerLeftAt);
  }

  open(input: OpenWebSessionInput): WebSessionRecord {
    this.record ??= { ...input, createdAt: Date.now(), status: "active", endedAt: null };
    this.kv.put(KEY, this.record);
    return this.record;
  }

  providerChanged(provider: ProviderName): void {
    if (!this.record) return;
    this.record.provider = provider;
    this.kv.put(KEY, this.record);
  }

  /** Marks the session ended here, then in D1 (retried by the caller's alarm if D1 is down). */
  end(): boolean {
    const record = this.record;
    if (!record || record.status === "ended") return false;
    record.status = "ended";
    record.endedAt = Date.now();
    this.kv.put(KEY, record);
    return true;
  }

  async syncToD1(env: Env): Promise<boolean> {
    const record = this.record;
    if (!record) return true;
    try {
      await tenantScopeFor(env, record.tenantId).update(
        sessions,
        { status: record.status, endedAt: record.endedAt, provider: record.provider },
        eq(sessions.id, record.sessionId),
      );
      return true;
    } catch {
      return false;
    }
  }
}

/** A browser caller's audio: PCM16 at 16 kHz, both ways. */
export const BROWSER_AUDIO_FORMAT = { encoding: "pcm16", sampleRate: BROWSER_AUDIO_RATE } as const;

/**
 * The browser caller as the conversation's leg: PCM16 16 kHz both ways, no marks (heard time is estimated). One per
 * web session, made once: it is asked for on every frame, and it reaches whichever browser is the caller now.
 */
export function browserLeg(live: LiveSockets): CallerLeg {
  let buffer = new Uint8Array(0);
  return {
    inbound: BROWSER_AUDIO_FORMAT,
    outbound: BROWSER_AUDIO_FORMAT,
    echoesMarks: false,
    sendAudio(base64) {
      const capacity = base64Capacity(base64);
      if (buffer.length < capacity) buffer = new Uint8Array(capacity);
      live.sendCallerAudio(buffer.subarray(0, decodeBase64Into(base64, buffer)));
    },
    mark() {},
    clear: () => live.broadcast({ type: "playback_clear", at: Date.now() }),
  };
}
