import { z } from "zod";
import type { Sentiment } from "./analysis/lexicon.ts";
import type { PrincipalRef } from "./db/principal-ref.ts";
import { CALL_STATUSES, type CallStatus, type Role } from "./db/schema.ts";
import { ESCALATION_RULES } from "./escalation.ts";
import type { ProviderName } from "./provider-names.ts";

/**
 * What a browser connected to `/api/v1/sessions/{id}/live` receives (JSON text frames) and may send. Agent audio
 * for a web session's caller travels as binary frames of PCM16 little-endian, 16 kHz mono; so does the browser's
 * microphone audio. Supervisors receive events only, except the one holding a takeover: it receives the caller's
 * audio as binary frames of the same format and sends its own.
 */
export const LIVE_SUBPROTOCOL = "switchboard.v1" as const;
export const BROWSER_AUDIO_RATE = 16_000 as const;

export type LiveRole = "supervisor" | "caller";

/** Who a live socket belongs to: the Worker authenticates the browser and tells the object in this header (JSON). */
export const LIVE_ATTACHMENT_HEADER = "X-Live-Attachment";

export interface LiveAttachment {
  tenantId: string;
  /** Who opened the socket; the object rechecks it against D1 while the socket is open. */
  principal: PrincipalRef;
  role: LiveRole;
  /**
   * The roles that may keep the socket: those of the permission it was opened under (watching, joining as the
   * caller, joining another's web session), resolved by the Worker. A principal whose role leaves them is
   * disconnected.
   */
  roles: Role[];
  /**
   * Present (the roles granting `sessions:supervise`) only on a supervisor's socket whose principal's role grants it,
   * as the Worker found it: it may whisper, take over and release. The object's recheck closes the socket once the
   * role leaves these. Absent means no.
   */
  superviseRoles?: Role[];
  correlationId: string;
  connectedAt: number;
}

/**
 * Close codes of a socket whose principal lost its access (an `error` event with the same code comes first):
 * 4401 `credential_revoked` (disabled user, revoked key or token: authenticate again), 4403 `permission_revoked`
 * (the role no longer allows what the socket does).
 */
export const LIVE_CLOSE = {
  credential_revoked: 4401,
  permission_revoked: 4403,
} as const;

/**
 * A tenant's escalation rule fired (workers/shared/escalation.ts), once per rule per session, to every watcher.
 * `transfer` is there when the rules name a number and the session is a phone call in progress: the carrier took the
 * transfer (`ok`, the call's status after it) or refused it (`error`; the call goes on with the agent).
 */
export const escalationEventSchema = z.object({
  type: z.literal("escalation"),
  rule: z.enum(ESCALATION_RULES),
  reason: z.string().max(300),
  at: z.number().int(),
  transfer: z.object({ to: z.string(), ok: z.boolean(), status: z.enum(CALL_STATUSES), error: z.string().max(300).nullable() }).optional(),
});
export type EscalationEvent = z.infer<typeof escalationEventSchema>;

export type ProviderLinkState = "connecting" | "connected" | "reconnecting" | "failed" | "closed";

/**
 * Screen sharing (a web session's caller only): the image types a `screen` frame may carry, and the largest such text
 * frame (every other text frame stays within 4 KiB). A frame this size holds an image of about 190 KiB.
 */
export const SCREEN_MIME_TYPES = ["image/jpeg", "image/png"] as const;
export type ScreenMimeType = (typeof SCREEN_MIME_TYPES)[number];
export const MAX_SCREEN_FRAME_BYTES = 256 * 1024;

/** What the session's current provider can take besides audio; `vision`: screen frames reach the agent. */
export interface LiveCapabilities {
  vision: boolean;
}
/** The `error` code a web caller gets (once per provider) when its screen frames cannot reach the agent. */
export const VISION_UNSUPPORTED = "vision_unsupported";

export type LiveEvent =
  | {
      type: "hello";
      sessionId: string;
      role: LiveRole;
      channel: "phone" | "web";
      provider: ProviderName;
      callStatus: CallStatus | null;
      capabilities: LiveCapabilities;
      /**
       * What a recorded session's caller must be told before the agent speaks (the tenant's `consentMessage`); null
       * when the session is not recorded. A phone caller hears it from the carrier; a web caller's browser shows and
       * says it on joining, then sends `consent_heard`: until then (or until the time to say it has passed) the
       * caller's microphone reaches neither the agent nor the recording.
       */
      consent: string | null;
      serverTime: number;
    }
  /** `supervisor`: a supervisor's words to the caller while they hold a takeover. */
  | { type: "transcript"; role: "caller" | "agent" | "supervisor"; text: string; provider: ProviderName; interrupted: boolean; at: number }
  | { type: "call_state"; status: CallStatus; reason: string | null; at: number }
  | { type: "provider"; provider: ProviderName; state: ProviderLinkState; detail: string | null; at: number }
  /** The session moved to another provider (a switch, a failover): what it can take now. */
  | { type: "capabilities"; provider: ProviderName; capabilities: LiveCapabilities; at: number }
  | { type: "barge_in"; itemId: string; heardMs: number; at: number }
  | {
      type: "provider_switched";
      from: ProviderName;
      to: ProviderName;
      reason: "manual" | "auto_failover" | "rollover";
      success: boolean;
      error: string | null;
      at: number;
    }
  | { type: "tool_call"; callId: string; name: string; status: "started" | "completed" | "failed"; result: string | null; at: number }
  | { type: "dtmf"; digit: string; at: number }
  /**
   * A caller turn's sentiment (lexicon, workers/shared/analysis/lexicon.ts) and the conversation's so far, which carries on
   * across provider switches (`turns` counts every caller turn of the session).
   */
  | { type: "sentiment"; turn: Sentiment; conversation: Sentiment; turns: number; provider: ProviderName; at: number }
  | EscalationEvent
  /** The caller talked over the agent: a web caller's browser drops the agent audio it has not played yet. */
  | { type: "playback_clear"; at: number }
  | { type: "session_ended"; reason: string; at: number }
  /** Supervision, sent to the supervisors' sockets only (a web session's caller is never told). `by`: the principal's id. */
  | { type: "whisper"; text: string; by: string; at: number }
  | { type: "takeover"; by: string; at: number }
  /** `supervisor_left`: the holder's socket closed (or was cut off), which releases the call. */
  | { type: "release"; by: string; reason: "released" | "supervisor_left"; at: number }
  | { type: "pong"; t: number; serverTime: number }
  | { type: "error"; code: string; message: string };

/** A whisper's bound: guidance is a sentence or two, and it rides every later provider session's instructions. */
export const MAX_WHISPER_CHARS = 1_000;

/**
 * Browser → object text frames. `whisper`, `takeover` and `release` need `sessions:supervise` on a supervisor's
 * socket; anyone else gets an `error` frame and nothing happens. `screen` (base64 image data) is the web caller's
 * only, at most one a second; so is `consent_heard`.
 */
export type LiveClientMessage =
  | { type: "ping"; t: number }
  /** The web caller's browser has said the session's consent message (`hello.consent`). */
  | { type: "consent_heard" }
  | { type: "screen"; mimeType: ScreenMimeType; data: string }
  | { type: "whisper"; text: string }
  | { type: "takeover" }
  | { type: "release" };

export type SupervisorCommand = Exclude<LiveClientMessage, { type: "ping" | "screen" | "consent_heard" }>;
