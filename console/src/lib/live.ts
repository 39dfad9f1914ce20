import type { LiveClientMessage, LiveEvent } from "../../../workers/shared/live-protocol.ts";
import { auth } from "./auth.svelte.ts";

export type { LiveEvent };

/** Connection quality from the `/live` ping round trip (README "Web console"). */
export type Quality = "excellent" | "good" | "fair" | "poor" | "disconnected";

export function qualityOf(roundTripMs: number | null): Quality {
  if (roundTripMs === null) return "disconnected";
  if (roundTripMs <= 50) return "excellent";
  if (roundTripMs <= 150) return "good";
  if (roundTripMs <= 300) return "fair";
  if (roundTripMs <= 1000) return "poor";
  return "disconnected";
}

export type LiveStatus = "connecting" | "open" | "reconnecting" | "closed";

export interface LiveOptions {
  sessionId: string;
  role: "supervisor" | "caller";
  onEvent(event: LiveEvent): void;
  onAudio?(frame: ArrayBuffer): void;
  onStatus?(status: LiveStatus): void;
  onRoundTrip?(roundTripMs: number | null): void;
  /** Heartbeat period; three unanswered pings in a row mean the socket is dead and it is reopened. */
  heartbeatMs?: number;
}

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const MISSED_PINGS_ALLOWED = 3;
/** Close codes after which reopening cannot help: the credential or the permission is gone. */
const FINAL_CLOSE_CODES = new Set([4401, 4403, 1008, 4000]);

/**
 * One `/live` socket that stays open: the credential goes as a subprotocol (never in the URL), a ping every
 * `heartbeatMs` measures the round trip, three missed pongs or an unexpected close reopen it with exponential backoff
 * and full jitter, and going offline waits for the network to come back. `close()` ends it for good.
 */
export class LiveSocket {
  private socket: WebSocket | null = null;
  private attempts = 0;
  private missed = 0;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private readonly onOnline = () => this.reopenSoon(0);

  constructor(private readonly options: LiveOptions) {
    addEventListener("online", this.onOnline);
    void this.open();
  }

  send(message: LiveClientMessage | { type: "screen"; mimeType: string; data: string }): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  sendAudio(frame: ArrayBuffer): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(frame);
    return true;
  }

  /** Pings now (a quality indicator asking for a fresh figure); the heartbeat goes on as before. */
  ping(): void {
    this.send({ type: "ping", t: Math.round(performance.now()) });
  }

  close(): void {
    this.closed = true;
    removeEventListener("online", this.onOnline);
    clearInterval(this.heartbeat);
    clearTimeout(this.retry);
    this.socket?.close(1000, "closed by the console");
    this.options.onStatus?.("closed");
  }

  private async open(): Promise<void> {
    if (this.closed) return;
    this.options.onStatus?.(this.attempts === 0 ? "connecting" : "reconnecting");
    let token: string;
    try {
      token = await auth.accessToken();
    } catch {
      return this.close();
    }
    const url = new URL(`/api/v1/sessions/${encodeURIComponent(this.options.sessionId)}/live`, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("role", this.options.role);
    const socket = new WebSocket(url, ["switchboard.v1", `bearer.${token}`]);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempts = 0;
      this.missed = 0;
      this.options.onStatus?.("open");
      this.ping();
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.beat(), this.options.heartbeatMs ?? 30_000);
    });
    socket.addEventListener("message", (message: MessageEvent<string | ArrayBuffer>) => {
      if (typeof message.data !== "string") return this.options.onAudio?.(message.data);
      const event = parse(message.data);
      if (!event) return;
      if (event.type === "pong") {
        this.missed = 0;
        this.options.onRoundTrip?.(Math.max(0, Math.round(performance.now()) - event.t));
      }
      this.options.onEvent(event);
    });
    socket.addEventListener("close", (close) => {
      if (this.socket !== socket) return;
      clearInterval(this.heartbeat);
      this.options.onRoundTrip?.(null);
      if (this.closed) return;
      if (FINAL_CLOSE_CODES.has(close.code)) {
        this.closed = true;
        this.options.onStatus?.("closed");
        return;
      }
      this.reopenSoon(backoff(this.attempts++));
    });
  }

  private beat(): void {
    if (this.missed >= MISSED_PINGS_ALLOWED) {
      // Dead without a close (a network that vanished): drop it and reopen.
      const dead = this.socket;
      this.socket = null;
      dead?.close(4100, "heartbeat lost");
      clearInterval(this.heartbeat);
      this.options.onRoundTrip?.(null);
      this.reopenSoon(backoff(this.attempts++));
      return;
    }
    this.missed++;
    this.ping();
  }

  private reopenSoon(delayMs: number): void {
    if (this.closed) return;
    clearTimeout(this.retry);
    this.options.onStatus?.("reconnecting");
    this.retry = setTimeout(() => {
      if (navigator.onLine === false) return; // the `online` event reopens it
      void this.open();
    }, delayMs);
  }
}

/** Exponential backoff with full jitter: a uniformly random wait up to min(max, base·2^attempt). */
export function backoff(attempt: number): number {
  return Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
}

function parse(text: string): LiveEvent | null {
  try {
    const value = JSON.parse(text) as { type?: unknown };
    return typeof value.type === "string" ? (value as LiveEvent) : null;
  } catch {
    return null;
  }
}
