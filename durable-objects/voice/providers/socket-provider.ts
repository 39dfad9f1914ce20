import { isRecord } from "../../../workers/shared/json.ts";
import type { Logger } from "../../../workers/shared/logger.ts";
import type { ProviderName } from "../../../workers/shared/settings.ts";
import { closeQuietly } from "../../../workers/shared/websockets.ts";
import type { AudioFormat } from "../../media/audio/audio-format.ts";
import {
  type ConversationItem,
  logSessionConfigured,
  logSessionSetup,
  type ProviderEvent,
  type ProviderEventHandler,
  type ProviderSessionConfig,
  type VoiceProvider,
} from "./provider.ts";
import { CONNECT_TIMEOUT_MS, openProviderSocket, ProviderSetupError } from "./provider-socket.ts";

/** What every network adapter counts instead of throwing: for metrics and tests. */
export interface SocketProviderStats {
  /** Provider messages that were not JSON objects, or lacked or mistyped a field the adapter needs (skipped). */
  malformedMessages: number;
  /** Messages to the provider not sent: the session was not open, or the socket closed under the send. */
  droppedSends: number;
  /** Exceptions thrown by the owner's event handler (caught: one must not break the socket's event loop). */
  handlerErrors: number;
}

export interface SocketProviderLimits {
  /** A larger provider message ends the session with 1009 (UTF-16 units for text frames, bytes for binary). */
  maxInboundSize: number;
  /** How long the provider has, once the socket is open, to confirm its setup. */
  setupTimeoutMs?: number;
}

type Lifecycle = "new" | "connecting" | "open" | "closed";

/** Events raised while the session is being set up wait for connect() to resolve; at most this many. */
const MAX_QUEUED_EVENTS = 256;

/**
 * The shared base of the adapters that speak to a provider over a WebSocket: the session's lifecycle (connecting →
 * open → closed, once), the socket and its listeners, the setup deadline, the inbound size guard and JSON parse,
 * sends that never throw, the owner's handler guarded, and one failure policy for all of them:
 *
 * - connect() resolves once the adapter calls `setupDone()` (and its `ready()` has run), and rejects with a ProviderSetupError when the
 *   upgrade is refused, the socket closes, the deadline passes, the adapter calls `setupFailed`, or close() is
 *   called meanwhile. Events raised before it resolves are delivered right after, in order; none after a rejection.
 * - After that, the session ends once: the socket closing, an oversized message (1009), or `end()` from the adapter
 *   emit one `closed` (after the adapter's `closing()` has said its last words); a local close() emits nothing.
 * - A malformed message is counted and skipped; the session carries on.
 *
 * Each adapter supplies its wire protocol: where to dial, what to send once the socket is open, what a message
 * means while setting up and afterwards, and what a binary frame is (JSON text by default).
 */
export abstract class SocketProvider implements VoiceProvider {
  abstract readonly name: ProviderName;
  abstract readonly inputFormat: AudioFormat;
  abstract readonly outputFormat: AudioFormat;
  protected readonly baseCounts: SocketProviderStats = { malformedMessages: 0, droppedSends: 0, handlerErrors: 0 };
  private lifecycle: Lifecycle = "new";
  private socket: WebSocket | null = null;
  private pending: { resolve: () => void; reject: (error: Error) => void; timer: ReturnType<typeof setTimeout> } | null = null;
  private queued: ProviderEvent[] = [];
  private readonly decoder = new TextDecoder();
  private log: Logger | null = null;

  constructor(
    private readonly onEvent: ProviderEventHandler,
    private readonly limits: SocketProviderLimits,
  ) {}

  // ── the adapter's protocol ───────────────────────────────────────────────────────────────────────────────

  /** Where to dial and with which headers (credentials go in a header or the URL, and neither is ever logged). */
  protected abstract endpoint(config: ProviderSessionConfig): { url: string; headers: Record<string, string> };
  /** The socket is open: send what starts the session (most protocols' setup message). */
  protected abstract opened(config: ProviderSessionConfig): void;
  /** A message while the session is being set up: call `setupDone()` when it is ready, `setupFailed()` if refused. */
  protected abstract setupMessage(message: Record<string, unknown>): void;
  /** A message of the open session. */
  protected abstract message(message: Record<string, unknown>): void;

  /** A binary frame: JSON text unless the adapter says otherwise (Deepgram's are audio). */
  protected binary(data: ArrayBuffer): void {
    this.json(this.decoder.decode(data));
  }

  /** The provider confirmed its setup: send what must precede caller audio (the conversation so far), arm timers. */
  protected ready(_config: ProviderSessionConfig): void {}

  /** Last words before `closed` (pending transcripts). */
  protected closing(): void {}

  /** The session is over, however it ended: stop the adapter's timers. */
  protected stopped(): void {}

  // ── VoiceProvider ────────────────────────────────────────────────────────────────────────────────────────

  async connect(config: ProviderSessionConfig): Promise<void> {
    if (this.lifecycle !== "new") throw new ProviderSetupError("reused", "connect() is called once per provider instance");
    this.lifecycle = "connecting";
    this.log = config.log;
    let socket: WebSocket;
    try {
      const { url, headers } = this.endpoint(config);
      socket = await openProviderSocket(url, headers);
    } catch (error) {
      this.lifecycle = "closed";
      throw error;
    }
    if (this.lifecycle !== "connecting") {
      closeQuietly(socket, 1000, "closed during connect");
      throw new ProviderSetupError("closed", "close() was called during connect()", 1000);
    }
    this.socket = socket;
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => this.socketEnded(event.code, event.reason));
    socket.addEventListener("error", () => this.socketEnded(1006, "socket error"));
    const timeoutMs = this.limits.setupTimeoutMs ?? CONNECT_TIMEOUT_MS;
    const setupAt = Date.now();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.setupFailed(new ProviderSetupError("timeout", `not ready within ${timeoutMs} ms`)), timeoutMs);
      this.pending = { resolve, reject, timer };
      this.opened(config);
      logSessionSetup(this, config);
    });
    // The socket may have ended between the provider's confirmation and this continuation.
    if (this.lifecycle !== "connecting") throw new ProviderSetupError("closed", "closed as the session became ready");
    logSessionConfigured(this, config, Date.now() - setupAt);
    this.lifecycle = "open";
    this.ready(config);
    const queued = this.queued;
    this.queued = [];
    for (const event of queued) this.deliver(event);
  }

  abstract sendAudio(base64: string): void;
  abstract sendText(text: string): void;
  abstract sendToolResult(callId: string, name: string, result: string): void;
  abstract guide(text: string): void;
  abstract addContext(items: ConversationItem[]): void;
  abstract interrupt(itemId: string, heardMs: number): void;

  /** Ends the session; no events are reported after this. */
  close(): void {
    if (this.lifecycle === "closed" || this.lifecycle === "new") {
      this.lifecycle = "closed";
      return;
    }
    if (this.lifecycle === "connecting") {
      this.setupFailed(new ProviderSetupError("closed", "close() was called during connect()", 1000));
      return;
    }
    this.lifecycle = "closed";
    this.stopped();
    closeQuietly(this.socket, 1000, "session closed");
  }

  // ── for the adapter ──────────────────────────────────────────────────────────────────────────────────────

  /** Whether the session is set up and not ended (the owner's sends are dropped otherwise). */
  protected get isOpen(): boolean {
    return this.lifecycle === "open";
  }

  protected get isSettingUp(): boolean {
    return this.lifecycle === "connecting";
  }

  /**
   * The provider confirmed its setup: connect() resolves, then `ready()` runs and the events raised meanwhile (the
   * rest of this message included) are delivered, all before the owner's `await connect()` continues.
   */
  protected setupDone(): void {
    const pending = this.pending;
    if (!pending || this.lifecycle !== "connecting") return;
    this.pending = null;
    clearTimeout(pending.timer);
    pending.resolve();
  }

  /** The provider refused the setup, or it did not come in time: connect() rejects, the socket is closed. */
  protected setupFailed(error: ProviderSetupError, closeCode = 1000): void {
    const pending = this.pending;
    this.pending = null;
    this.lifecycle = "closed";
    this.queued = [];
    this.stopped();
    if (pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    closeQuietly(this.socket, closeCode, "session setup failed");
  }

  /** Ends an open session from the adapter's side (a protocol violation): one `closed` event. */
  protected end(code: number, reason: string): void {
    if (this.lifecycle === "connecting") {
      this.setupFailed(new ProviderSetupError("closed", reason, code), code === 1009 ? 1009 : 1000);
      return;
    }
    if (this.lifecycle !== "open") return;
    this.closing();
    this.lifecycle = "closed";
    this.stopped();
    closeQuietly(this.socket, code === 1009 ? 1009 : 1000, reason);
    this.deliver({ type: "closed", code, reason });
  }

  /** One provider event to the owner: held while setting up, dropped once the session is over. */
  protected emit(event: ProviderEvent): void {
    if (this.lifecycle === "connecting") {
      if (this.queued.length < MAX_QUEUED_EVENTS) this.queued.push(event);
      return;
    }
    if (this.lifecycle === "open") this.deliver(event);
  }

  /** A message that was not what the protocol says: counted and skipped. */
  protected malformed(_reason: string): void {
    this.baseCounts.malformedMessages++;
  }

  /** Sends a text frame; never throws (a send racing the socket's close is counted, and its close event reports). */
  protected sendRaw(text: string): boolean {
    return this.sendFrame(text);
  }

  protected sendJson(message: object): boolean {
    return this.sendFrame(JSON.stringify(message));
  }

  protected sendBinary(bytes: Uint8Array): boolean {
    return this.sendFrame(bytes);
  }

  /** Parses one JSON text and hands the object on; anything else is malformed. */
  protected json(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return this.malformed("invalid JSON");
    }
    if (!isRecord(message)) return this.malformed("not a JSON object");
    try {
      if (this.lifecycle === "connecting") this.setupMessage(message);
      else if (this.lifecycle === "open") this.message(message);
    } catch {
      // A field of an unexpected type the adapter dereferenced: skip the message, keep the session.
      this.malformed("unexpected field type");
    }
  }

  // ── internals ────────────────────────────────────────────────────────────────────────────────────────────

  private sendFrame(frame: string | Uint8Array): boolean {
    const socket = this.socket;
    // Per frame: no native readyState read. The lifecycle is "closed" once we close or the socket's close event came.
    if (this.lifecycle === "closed" || !socket) {
      this.baseCounts.droppedSends++;
      return false;
    }
    try {
      socket.send(frame);
      return true;
    } catch {
      this.baseCounts.droppedSends++;
      return false;
    }
  }

  private receive(data: unknown): void {
    if (this.lifecycle !== "open" && this.lifecycle !== "connecting") return;
    const size = typeof data === "string" ? data.length : data instanceof ArrayBuffer ? data.byteLength : -1;
    if (size < 0) return this.malformed("unexpected frame type");
    if (size > this.limits.maxInboundSize) return this.end(1009, "message too big");
    if (typeof data === "string") this.json(data);
    else this.binary(data as ArrayBuffer);
  }

  private socketEnded(code: number, reason: string): void {
    if (this.lifecycle === "connecting") {
      this.setupFailed(new ProviderSetupError("closed", `closed with ${code} before the session was ready`, code));
      return;
    }
    this.end(code, reason);
  }

  private deliver(event: ProviderEvent): void {
    try {
      this.onEvent(event);
    } catch (error) {
      // Once per session: a handler that throws on every event must not log per frame.
      if (this.baseCounts.handlerErrors++ === 0) {
        this.log?.error("provider.handler_failed", { provider: this.name, providerEvent: event.type, error: errorName(error) });
      }
    }
  }
}

const errorName = (error: unknown) => (error instanceof Error ? error.name : "unknown");
