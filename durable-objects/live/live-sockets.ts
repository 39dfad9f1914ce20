import { z } from "zod";
import { LIVE_ATTACHMENT_HEADER, type LiveAttachment, type LiveEvent, type LiveRole } from "../../workers/shared/live-protocol.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import { closeQuietly, isWebSocketUpgrade, sendableCloseCode } from "../../workers/shared/websockets.ts";

/**
 * Browser WebSockets of `/api/v1/sessions/{id}/live` inside the session's object. The Worker has authenticated the
 * browser, checked its permission and the session's tenant, and says who it is in `X-Live-Attachment` (only the
 * Worker can reach the object, so the header is trusted; its tenant is still checked against the session's).
 * Sockets are accepted through the Hibernation API, so they survive eviction; their identity lives in the
 * socket's attachment. Input is bounded and never throws out of a handler: bad frames are skipped,
 * oversized ones close the socket (1009), an audio flood closes it (1008). Nothing is logged per frame.
 */
export const MAX_LIVE_TEXT_BYTES = 4 * 1024;
export const MAX_LIVE_AUDIO_BYTES = 16 * 1024;
export const MAX_AUDIO_FRAMES_PER_SECOND = 100;
/** Frames over the rate are dropped; a socket still over it after this many consecutive seconds is closed. */
const SUSTAINED_SECONDS = 3;

const LIVE_TAG = "live";
const roleTag = (role: LiveRole) => `live:${role}`;

const attachmentHeader = z
  .object({
    tenantId: z.string().min(1).max(128),
    principalId: z.string().min(1).max(128),
    role: z.enum(["supervisor", "caller"]),
    correlationId: z.string().min(1).max(128),
  })
  .strict();

export interface LiveHooks {
  /** The object's snapshot greeting; null = unknown session (refused with 404). */
  hello(role: LiveRole): LiveEvent | null;
  /** The session's tenant, checked against the attachment (defense in depth: 404 on mismatch). */
  tenantId(): string | null;
  /** One microphone frame (PCM16LE, 16 kHz mono) from the web session's caller. */
  onCallerAudio(pcm16: Uint8Array): void;
  log(): Logger;
}

interface AudioWindow {
  startedAt: number;
  frames: number;
  dropped: number;
  /** Consecutive earlier one-second windows that also went over the rate. */
  strikes: number;
}

export class LiveSockets {
  /** Per-socket audio rate windows; in memory only (a woken object simply starts a fresh window). */
  private readonly audio = new Map<WebSocket, AudioWindow>();

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
      this.hooks.log().warn("security.live_tenant_mismatch", { principalId: parsed.principalId, claimedTenantId: parsed.tenantId });
      return new Response("Unknown session", { status: 404 });
    }
    // One caller per session: a reconnecting browser (or a second tab) takes over from the older socket.
    if (parsed.role === "caller") this.closeTagged(roleTag("caller"), 4000, "replaced");

    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [LIVE_TAG, roleTag(parsed.role)]);
    server.serializeAttachment({ ...parsed, connectedAt: Date.now() } satisfies LiveAttachment);
    this.send(server, JSON.stringify(hello));
    this.hooks
      .log()
      .info("live.socket_accepted", { role: parsed.role, principalId: parsed.principalId, correlationId: parsed.correlationId });
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
        this.text(ws, message);
      } else {
        this.binary(ws, attachment, message);
      }
    } catch (error) {
      this.hooks.log().error("live.handler_failed", { error });
    }
  }

  closed(ws: WebSocket, code: number): void {
    this.audio.delete(ws);
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

  sendCallerAudio(pcm16: Uint8Array): void {
    for (const ws of this.ctx.getWebSockets(roleTag("caller"))) this.send(ws, pcm16);
  }

  hasCaller(): boolean {
    return this.ctx.getWebSockets(roleTag("caller")).some((ws) => ws.readyState === WebSocket.OPEN);
  }

  closeAll(code: number, reason: string): void {
    this.closeTagged(LIVE_TAG, code, reason);
  }

  private text(ws: WebSocket, message: string): void {
    if (utf8Length(message) > MAX_LIVE_TEXT_BYTES) {
      this.close(ws, 1009, "message too big");
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      return;
    }
    const type = parsed && typeof parsed === "object" ? (parsed as { type?: unknown }).type : undefined;
    if (type !== "ping") {
      return;
    }
    const t = (parsed as { t?: unknown }).t;
    if (typeof t !== "number" || !Number.isFinite(t)) {
      return;
    }
    // Not ctx.setWebSocketAutoResponse: it answers a fixed string, and the pong must echo the browser's `t`.
    this.send(ws, JSON.stringify({ type: "pong", t, serverTime: Date.now() } satisfies LiveEvent));
  }

  private binary(ws: WebSocket, attachment: LiveAttachment, message: ArrayBuffer): void {
    if (message.byteLength > MAX_LIVE_AUDIO_BYTES) {
      this.close(ws, 1009, "message too big");
      return;
    }
    if (attachment.role !== "caller") {
      return;
    }
    if (message.byteLength === 0 || message.byteLength % 2 !== 0) {
      return;
    }
    const verdict = this.admitAudio(ws);
    if (verdict === "abuse") {
      this.hooks.log().warn("security.live_audio_flood", { principalId: attachment.principalId, correlationId: attachment.correlationId });
      this.close(ws, 1008, "too many audio frames");
      return;
    }
    if (verdict === "drop") return;
    this.hooks.onCallerAudio(new Uint8Array(message));
  }

  /** At most MAX_AUDIO_FRAMES_PER_SECOND per one-second window; the excess is dropped. */
  private admitAudio(ws: WebSocket): "ok" | "drop" | "abuse" {
    const now = Date.now();
    let window = this.audio.get(ws);
    if (!window || now - window.startedAt >= 1_000) {
      const consecutive = window !== undefined && window.dropped > 0 && now - window.startedAt < 2_000;
      window = { startedAt: now, frames: 0, dropped: 0, strikes: consecutive ? window!.strikes + 1 : 0 };
      this.audio.set(ws, window);
    }
    window.frames += 1;
    if (window.frames <= MAX_AUDIO_FRAMES_PER_SECOND) return "ok";
    window.dropped += 1;
    // Twice the rate within one second, or over it for SUSTAINED_SECONDS in a row, is not a browser's jitter.
    return window.dropped > MAX_AUDIO_FRAMES_PER_SECOND || window.strikes >= SUSTAINED_SECONDS - 1 ? "abuse" : "drop";
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

  private close(ws: WebSocket, code: number, reason: string): void {
    this.audio.delete(ws);
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

function attachmentOf(ws: WebSocket): LiveAttachment | null {
  try {
    const value = ws.deserializeAttachment() as Partial<LiveAttachment> | null;
    return value &&
      typeof value.principalId === "string" &&
      typeof value.connectedAt === "number" &&
      (value.role === "supervisor" || value.role === "caller")
      ? (value as LiveAttachment)
      : null;
  } catch {
    return null;
  }
}

/** UTF-8 byte length, computed only when the UTF-16 length alone cannot settle the bound. */
function utf8Length(text: string): number {
  if (text.length > MAX_LIVE_TEXT_BYTES) return text.length;
  if (text.length * 3 <= MAX_LIVE_TEXT_BYTES) return text.length;
  return new TextEncoder().encode(text).byteLength;
}
