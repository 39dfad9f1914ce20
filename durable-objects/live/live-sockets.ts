import { z } from "zod";
import type { PrincipalRef, Standing } from "../../workers/shared/db/principal-standing.ts";
import { ROLES } from "../../workers/shared/db/schema.ts";
import {
  LIVE_ATTACHMENT_HEADER,
  LIVE_CLOSE,
  type LiveAttachment,
  type LiveEvent,
  type LiveRole,
  MAX_SCREEN_FRAME_BYTES,
  MAX_WHISPER_CHARS,
  type SupervisorCommand,
} from "../../workers/shared/live-protocol.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import { closeQuietly, isWebSocketUpgrade, sendableCloseCode } from "../../workers/shared/websockets.ts";
import type { ImageFrame } from "../voice/providers/provider.ts";
import { FrameRate } from "./frame-rate.ts";
import { MAX_SCREEN_FRAMES_PER_SECOND, screenImage } from "./screen-frames.ts";

/**
 * Browser WebSockets of `/api/v1/sessions/{id}/live` inside the session's object. The Worker has authenticated the
 * browser, checked its permission and the session's tenant, and says who it is in `X-Live-Attachment` (only the
 * Worker can reach the object, so the header is trusted; its tenant is still checked against the session's).
 * Sockets are accepted through the Hibernation API, so they survive eviction; their identity lives in the
 * socket's attachment. Input is bounded and never throws out of a handler: bad frames are skipped,
 * oversized ones close the socket (1009), an audio or screen flood closes it (1008). Nothing is logged per frame.
 * Authorisation at the upgrade is not the end of it: `recheck` (the object runs it every few seconds) disconnects a
 * socket whose principal was disabled, demoted below the socket's permission, or whose key or token was revoked.
 */
export const MAX_LIVE_TEXT_BYTES = 4 * 1024;
export const MAX_LIVE_AUDIO_BYTES = 16 * 1024;
export const MAX_AUDIO_FRAMES_PER_SECOND = 100;

const LIVE_TAG = "live";
const roleTag = (role: LiveRole) => `live:${role}`;

const id = z.string().min(1).max(128);
const attachmentHeader = z
  .object({
    tenantId: id,
    principal: z.discriminatedUnion("kind", [
      z.object({ kind: z.literal("user"), id, tokenId: id, issuedAt: z.number().int() }).strict(),
      z.object({ kind: z.literal("api_key"), id }).strict(),
    ]),
    role: z.enum(["supervisor", "caller"]),
    roles: z.array(z.enum(ROLES)).min(1).max(ROLES.length),
    superviseRoles: z.array(z.enum(ROLES)).min(1).max(ROLES.length).optional(),
    correlationId: id,
  })
  .strict();

/** Browser text frames by type; an unknown type is skipped, a known one with bad fields answered `invalid_message`. */
const clientMessages = {
  ping: z.object({ type: z.literal("ping"), t: z.number().finite() }),
  whisper: z.object({ type: z.literal("whisper"), text: z.string().trim().min(1).max(MAX_WHISPER_CHARS) }).strict(),
  takeover: z.object({ type: z.literal("takeover") }).strict(),
  release: z.object({ type: z.literal("release") }).strict(),
  consent_heard: z.object({ type: z.literal("consent_heard") }).strict(),
} as const;

const REVOKED_MESSAGE: Record<keyof typeof LIVE_CLOSE, string> = {
  credential_revoked: "Your access was revoked; sign in again",
  permission_revoked: "Your role no longer allows this connection",
};

export interface LiveHooks {
  /** The object's snapshot greeting; null = unknown session (refused with 404). */
  hello(role: LiveRole): LiveEvent | null;
  /** The session's tenant, checked against the attachment (defense in depth: 404 on mismatch). */
  tenantId(): string | null;
  /** The web session's caller joined (its greeting sent). */
  onCallerJoined(): void;
  /** The web session's caller's browser has said the consent message it was handed. */
  onConsentHeard(): void;
  /** One microphone frame (PCM16LE, 16 kHz mono) from the web session's caller. */
  onCallerAudio(pcm16: Uint8Array): void;
  /** One frame of the web session's caller's screen (validated, within the rate), for the agent to see. */
  onScreenFrame(image: ImageFrame): void;
  /** A supervisor's command, from a socket whose principal may supervise (the hook answers the socket itself). */
  onSupervisorCommand(ws: WebSocket, by: string, command: SupervisorCommand): void;
  /** Whether this socket holds the call's takeover (only its binary frames are audio for the caller). */
  holdsTakeover(ws: WebSocket): boolean;
  /** One frame (PCM16LE, 16 kHz mono) from the supervisor holding the takeover, for the caller. */
  onSupervisorAudio(pcm16: Uint8Array): void;
  /** A socket closed, or is being closed: a takeover it held ends. */
  onSocketGone(ws: WebSocket): void;
  /** The principals' standing now, in the order asked (D1; throws when it cannot answer). */
  standings(tenantId: string, principals: PrincipalRef[]): Promise<Standing[]>;
  log(): Logger;
}

export class LiveSockets {
  private readonly audio = new FrameRate(MAX_AUDIO_FRAMES_PER_SECOND);
  private readonly screen = new FrameRate(MAX_SCREEN_FRAMES_PER_SECOND);

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly hooks: LiveHooks,
  ) {}

  accept(request: Request): Response {
    if (!isWebSocketUpgrade(request.headers)) return new Response("Expected a WebSocket upgrade", { status: 426 });
    const parsed = parseAttachment(request.headers.get(LIVE_ATTACHMENT_HEADER));
    if (!parsed) {
      this.hooks.log().warn("security.live_attachment_invalid");
      return new Response("Bad attachment", { status: 400 });
    }
    const tenantId = this.hooks.tenantId();
    const hello = this.hooks.hello(parsed.role);
    if (!hello || tenantId === null) return new Response("Unknown session", { status: 404 });
    if (tenantId !== parsed.tenantId) {
      this.hooks.log().warn("security.live_tenant_mismatch", { principalId: parsed.principal.id, claimedTenantId: parsed.tenantId });
      return new Response("Unknown session", { status: 404 });
    }
    // One caller per session: a reconnecting browser (or a second tab) takes over from the older socket.
    if (parsed.role === "caller") this.closeTagged(roleTag("caller"), 4000, "replaced");

    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [LIVE_TAG, roleTag(parsed.role)]);
    server.serializeAttachment({ ...parsed, connectedAt: Date.now() } satisfies LiveAttachment);
    this.send(server, JSON.stringify(hello));
    if (parsed.role === "caller") this.hooks.onCallerJoined();
    this.hooks
      .log()
      .info("live.socket_accepted", { role: parsed.role, principalId: parsed.principal.id, correlationId: parsed.correlationId });
    return new Response(null, { status: 101, webSocket: client });
  }

  handles(ws: WebSocket): boolean {
    try {
      return this.ctx.getTags(ws).includes(LIVE_TAG);
    } catch {
      return attachmentOf(ws) !== null;
    }
  }

  message(ws: WebSocket, message: string | ArrayBuffer): void {
    try {
      const attachment = attachmentOf(ws);
      if (!attachment) {
        this.close(ws, 1011, "unknown socket");
      } else if (typeof message === "string") {
        this.text(ws, attachment, message);
      } else {
        this.binary(ws, attachment, message);
      }
    } catch (error) {
      this.hooks.log().error("live.handler_failed", { error });
    }
  }

  closed(ws: WebSocket, code: number): void {
    this.forgetRates(ws);
    this.hooks.onSocketGone(ws);
    // Complete the closing handshake (a no-op if the runtime already answered it).
    this.close(ws, sendableCloseCode(code), "closing");
  }

  broadcast(event: LiveEvent): void {
    let text: string;
    try {
      text = JSON.stringify(event);
    } catch (error) {
      this.hooks.log().error("live.broadcast_failed", { error, type: event.type });
      return;
    }
    for (const ws of this.ctx.getWebSockets(LIVE_TAG)) this.send(ws, text);
  }

  /** Supervision events: to the supervisors' sockets, never a web session's caller. */
  broadcastToSupervisors(event: LiveEvent): void {
    const text = JSON.stringify(event);
    for (const ws of this.ctx.getWebSockets(roleTag("supervisor"))) this.send(ws, text);
  }

  /** One socket's frame: an answer to what it sent, or the caller's audio for the supervisor holding a takeover. */
  sendTo(ws: WebSocket, data: LiveEvent | Uint8Array): void {
    this.send(ws, data instanceof Uint8Array ? data : JSON.stringify(data));
  }

  /** An event for the web session's caller only (never the supervisors). */
  sendToCaller(event: LiveEvent): void {
    const text = JSON.stringify(event);
    for (const ws of this.ctx.getWebSockets(roleTag("caller"))) this.send(ws, text);
  }

  sendCallerAudio(pcm16: Uint8Array): void {
    for (const ws of this.ctx.getWebSockets(roleTag("caller"))) this.send(ws, pcm16);
  }

  hasCaller(): boolean {
    return this.ctx.getWebSockets(roleTag("caller")).some((ws) => ws.readyState === WebSocket.OPEN);
  }

  closeAll(code: number, reason: string): void {
    this.closeTagged(LIVE_TAG, code, reason);
  }

  /** Browser sockets open now (the metrics' `websocket_connections_active{kind="live"}`). */
  openCount(): number {
    return this.ctx.getWebSockets(LIVE_TAG).filter((ws) => ws.readyState === WebSocket.OPEN).length;
  }

  anyOpen(): boolean {
    return this.ctx.getWebSockets(LIVE_TAG).some((ws) => ws.readyState === WebSocket.OPEN);
  }

  /**
   * Disconnects every socket whose principal no longer holds what the socket was opened under (an `error` event,
   * then a LIVE_CLOSE code): one D1 round trip for all of them, from the object's timer or alarm, never per frame.
   * If D1 cannot answer, the sockets stay and the next recheck asks again. True when a caller's socket was closed.
   */
  async recheck(): Promise<boolean> {
    const tenantId = this.hooks.tenantId();
    const open = this.ctx
      .getWebSockets(LIVE_TAG)
      .filter((ws) => ws.readyState === WebSocket.OPEN)
      .map((ws) => ({ ws, attachment: attachmentOf(ws) }));
    if (open.length === 0 || tenantId === null) return false;
    const known = open.filter((socket): socket is { ws: WebSocket; attachment: LiveAttachment } => socket.attachment !== null);
    let standings: Standing[];
    try {
      standings = await this.hooks.standings(
        tenantId,
        known.map(({ attachment }) => attachment.principal),
      );
    } catch (error) {
      this.hooks.log().warn("live.recheck_unavailable", { error });
      return false;
    }
    let callerClosed = false;
    let next = 0; // `known` is `open` without the unreadable attachments, in the same order
    for (const { ws, attachment } of open) {
      const verdict = attachment ? revocationOf(attachment, standings[next++]!) : "credential_revoked";
      if (!verdict) continue;
      this.hooks.log().warn("security.live_revoked", {
        reason: verdict,
        principalId: attachment?.principal.id,
        correlationId: attachment?.correlationId,
      });
      this.send(ws, JSON.stringify({ type: "error", code: verdict, message: REVOKED_MESSAGE[verdict] } satisfies LiveEvent));
      this.close(ws, LIVE_CLOSE[verdict], verdict);
      callerClosed ||= attachment?.role === "caller";
    }
    return callerClosed;
  }

  private text(ws: WebSocket, attachment: LiveAttachment, message: string): void {
    // Only a web caller's screen frames may be bigger than 4 KiB; whether this is one is known once it is parsed.
    const bound = attachment.role === "caller" ? MAX_SCREEN_FRAME_BYTES : MAX_LIVE_TEXT_BYTES;
    const size = utf8Length(message, bound);
    if (size > bound) {
      this.close(ws, 1009, "message too big");
      return;
    }
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(message);
    } catch {
      // Malformed JSON is skipped (after the size check below).
    }
    const type = parsed && typeof parsed === "object" ? (parsed as { type?: unknown }).type : undefined;
    if (type === "screen") return this.screenFrame(ws, attachment, parsed);
    if (size > MAX_LIVE_TEXT_BYTES) {
      this.close(ws, 1009, "message too big");
      return;
    }
    if (typeof type !== "string" || !Object.hasOwn(clientMessages, type)) return;
    const result = clientMessages[type as keyof typeof clientMessages].safeParse(parsed);
    if (!result.success) {
      // A malformed ping is skipped as before; a malformed command is answered, so a console shows why nothing happened.
      if (type !== "ping") this.sendError(ws, "invalid_message", `Malformed ${type}`);
      return;
    }
    const command = result.data;
    if (command.type === "ping") {
      // Not ctx.setWebSocketAutoResponse: it answers a fixed string, and the pong must echo the browser's `t`.
      this.send(ws, JSON.stringify({ type: "pong", t: command.t, serverTime: Date.now() } satisfies LiveEvent));
      return;
    }
    if (command.type === "consent_heard") {
      if (attachment.role === "caller") this.hooks.onConsentHeard();
      else this.sendError(ws, "forbidden", "Only the web session's caller says the consent");
      return;
    }
    if (attachment.role !== "supervisor" || !attachment.superviseRoles) {
      this.sendError(ws, "forbidden", "Whisper, takeover and release need sessions:supervise");
      return;
    }
    this.hooks.onSupervisorCommand(ws, attachment.principal.id, command);
  }

  /** A frame of the caller's screen: the caller's only, within the rate, a real JPEG or PNG; never stored or logged. */
  private screenFrame(ws: WebSocket, attachment: LiveAttachment, message: unknown): void {
    if (attachment.role !== "caller") {
      this.sendError(ws, "forbidden", "Only the web session's caller may share its screen");
      return;
    }
    const verdict = this.screen.admit(ws);
    if (verdict === "abuse") {
      this.hooks
        .log()
        .warn("security.live_screen_flood", { principalId: attachment.principal.id, correlationId: attachment.correlationId });
      this.close(ws, 1008, "too many screen frames");
      return;
    }
    if (verdict === "drop") return;
    const image = screenImage(message);
    if (typeof image === "string") {
      this.sendError(ws, "invalid_message", image);
      return;
    }
    this.hooks.onScreenFrame(image);
  }

  private sendError(ws: WebSocket, code: string, message: string): void {
    this.send(ws, JSON.stringify({ type: "error", code, message } satisfies LiveEvent));
  }

  private binary(ws: WebSocket, attachment: LiveAttachment, message: ArrayBuffer): void {
    if (message.byteLength > MAX_LIVE_AUDIO_BYTES) {
      this.close(ws, 1009, "message too big");
      return;
    }
    const fromSupervisor = attachment.role === "supervisor";
    if (fromSupervisor && !this.hooks.holdsTakeover(ws)) {
      return;
    }
    if (message.byteLength === 0 || message.byteLength % 2 !== 0) {
      return;
    }
    const verdict = this.audio.admit(ws);
    if (verdict === "abuse") {
      this.hooks.log().warn("security.live_audio_flood", { principalId: attachment.principal.id, correlationId: attachment.correlationId });
      this.close(ws, 1008, "too many audio frames");
      return;
    }
    if (verdict === "drop") return;
    if (fromSupervisor) this.hooks.onSupervisorAudio(new Uint8Array(message));
    else this.hooks.onCallerAudio(new Uint8Array(message));
  }

  /** A send that fails closes the socket; it never throws into the caller. */
  private send(ws: WebSocket, data: string | Uint8Array): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    try {
      ws.send(data);
    } catch (error) {
      this.hooks.log().warn("live.send_failed", { error });
      this.close(ws, 1011, "send failed");
    }
  }

  private closeTagged(tag: string, code: number, reason: string): void {
    for (const ws of this.ctx.getWebSockets(tag)) this.close(ws, code, reason);
  }

  private forgetRates(ws: WebSocket): void {
    this.audio.forget(ws);
    this.screen.forget(ws);
  }

  private close(ws: WebSocket, code: number, reason: string): void {
    this.forgetRates(ws);
    this.hooks.onSocketGone(ws);
    closeQuietly(ws, code, reason);
  }
}

function parseAttachment(header: string | null): Omit<LiveAttachment, "connectedAt"> | null {
  if (!header || header.length > 2_048) return null;
  try {
    const result = attachmentHeader.safeParse(JSON.parse(header));
    return result.success ? result.data : null;
  } catch {
    return null;
  }
}

/** Disabled, deleted or revoked first (authenticating again is the remedy), then the role, then this token. */
function revocationOf(attachment: LiveAttachment, standing: Standing): keyof typeof LIVE_CLOSE | null {
  if (standing.role === null) return "credential_revoked";
  if (!attachment.roles.includes(standing.role)) return "permission_revoked";
  // A socket that may whisper and take over keeps that only while the role grants it.
  if (attachment.superviseRoles && !attachment.superviseRoles.includes(standing.role)) return "permission_revoked";
  return standing.credentialValid ? null : "credential_revoked";
}

function attachmentOf(ws: WebSocket): LiveAttachment | null {
  try {
    const value = ws.deserializeAttachment() as Partial<LiveAttachment> | null;
    return value &&
      typeof value.principal?.id === "string" &&
      Array.isArray(value.roles) &&
      typeof value.connectedAt === "number" &&
      (value.role === "supervisor" || value.role === "caller")
      ? (value as LiveAttachment)
      : null;
  } catch {
    return null;
  }
}

/**
 * UTF-8 byte length, computed only when the UTF-16 length alone cannot settle it against `bound` or the 4 KiB text
 * bound (a caller's frame is held to both: 256 KiB if a screen frame, 4 KiB otherwise).
 */
function utf8Length(text: string, bound: number): number {
  if (text.length > bound) return text.length;
  if (text.length * 3 <= MAX_LIVE_TEXT_BYTES) return text.length;
  return new TextEncoder().encode(text).byteLength;
}
