import type { Carrier } from "../../workers/carriers/carrier.ts";
import type { AudioEncoding, CarrierMediaProtocol, MediaFrame } from "../../workers/carriers/media-frames.ts";
import { ReorderWindow } from "../../workers/carriers/reorder-window.ts";
import { constantTimeEqualText } from "../../workers/shared/constant-time.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import { closeQuietly, sendableCloseCode } from "../../workers/shared/websockets.ts";
import { canonicalBase64Bytes } from "./audio/pcm16.ts";
import type { CallerLeg } from "./caller-leg.ts";
import { StreamLateness } from "./isolate-lateness.ts";

/**
 * The carrier's media WebSocket inside the call's object: authenticated, bounded, and translated to MediaFrames
 * by the carrier's own protocol. It never throws out of a socket handler: bad input is skipped.
 *
 * A stream is authenticated either before it arrives (the Worker checked the credential in its upgrade) or by its
 * `start` (the carrier presents the credential in-stream). Only an authenticated stream replaces the call's
 * current one (a carrier reconnecting after a deploy or a network blip), so a replayed upgrade that cannot
 * authenticate never cuts the caller off; a stream still unauthenticated after START_TIMEOUT_MS is closed, and
 * at most MAX_PENDING_STREAMS wait at once.
 *
 * Accepted as a plain (not hibernatable) socket: a hibernatable socket's every message is a separate event
 * dispatched into the object, measured at ~1 ms a message locally against ~0.17 ms for a plain socket's listener,
 * and a live call cannot hibernate anyway (its provider socket keeps the object in memory). An object that is
 * restarted (a deploy) loses the socket; the carrier's reconnect is re-attached to the call.
 */
/** A media frame is ~300 bytes and `start` a few KiB; anything near this is not a carrier speaking. */
export const MAX_CARRIER_MESSAGE_BYTES = 16 * 1024;
/**
 * Where each payload is decoded to check it is canonical base64 (payloads are at most 3/4 of a message), and read
 * from by the frame's listener. One per isolate, not 12 KiB per call: the frame is handled synchronously, so no two
 * streams use it at once.
 */
const scratch = new Uint8Array((MAX_CARRIER_MESSAGE_BYTES * 3) / 4);
/** Frames that may arrive out of order wait up to this many for a gap to fill (60 ms of audio). */
const REORDER_WINDOW_FRAMES = 3;
const START_TIMEOUT_MS = 10_000;
const MAX_PENDING_STREAMS = 2;

interface Attachment {
  carrier: Carrier;
  authenticated: boolean;
  /** What the stream's `start` must present, for carriers that authenticate in-stream. */
  expectedCredential: string | null;
  correlationId: string;
  /** What the carrier was asked to play back; fixed by the command that started the stream, not by its `start`. */
  playback: AudioEncoding;
  streamSid?: string;
  /** What the stream carries in, from its `start`. */
  encoding?: AudioEncoding;
}

interface Hooks {
  onFrame(frame: MediaFrame): void;
  /** A mark the carrier echoed (one per agent chunk played), on the per-frame path: must not await. */
  onMark(name: string): void;
  /**
   * Caller audio, in order, on the per-frame path: must not await. `decoded` is the payload's bytes when they were
   * decoded on the way (a view of a buffer the next frame reuses: read it before returning, never keep it).
   */
  onAudio(payload: string, decoded?: Uint8Array): void;
  /** A stream closed: everything it carried has been read. */
  onClosed(): void;
  log(): Logger;
}

interface Stream {
  /** Still one of `streams`: a refused or closed stream's later messages are not read. */
  open: boolean;
  protocol: CarrierMediaProtocol;
  reorder: ReorderWindow | null;
  attachment: Attachment;
  startTimer: ReturnType<typeof setTimeout> | null;
  /** How late this stream's audio is read: the isolate's load, as load shedding sees it. */
  lateness: StreamLateness;
}

export interface AcceptOptions {
  correlationId: string;
  /** The credential the stream's `start` must carry; null when the Worker already authenticated the upgrade. */
  expectedCredential: string | null;
  /** The encoding the carrier was asked to play back (Carrier.mediaEncoding of the number's codec). */
  playback: AudioEncoding;
}

export class MediaSockets {
  private readonly streams = new Map<WebSocket, Stream>();
  private currentLeg: { socket: WebSocket; leg: CallerLeg } | null = null;

  constructor(private readonly hooks: Hooks) {}

  accept(carrier: Carrier, options: AcceptOptions): Response {
    const { 0: client, 1: server } = new WebSocketPair();
    server.accept();
    const authenticated = options.expectedCredential === null;
    const attachment: Attachment = {
      carrier,
      authenticated,
      expectedCredential: options.expectedCredential,
      correlationId: options.correlationId,
      playback: options.playback,
    };
    const reorder = carrier.reordersMedia ? new ReorderWindow(REORDER_WINDOW_FRAMES, (payload) => this.hooks.onAudio(payload)) : null;
    const stream: Stream = {
      open: true,
      protocol: carrier.mediaStream(),
      reorder,
      attachment,
      startTimer: null,
      lateness: new StreamLateness(),
    };
    // The listener holds its stream: no lookup in `streams` per message.
    server.addEventListener("message", (event) => this.message(server, stream, event.data as string | ArrayBuffer));
    server.addEventListener("close", (event) => this.closed(server, event.code));
    server.addEventListener("error", () => this.closed(server, 1011));
    if (authenticated) {
      this.streams.set(server, stream);
      this.replaceAllBut(server);
    } else {
      this.limitPending();
      this.streams.set(server, stream);
      stream.startTimer = setTimeout(() => this.refuse(server, "no start"), START_TIMEOUT_MS);
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Carrier streams open now (the metrics' `websocket_connections_active{kind="carrier"}`). */
  openCount(): number {
    return this.streams.size;
  }

  /** Closes every stream; each is forgotten on its close event, so what the carrier sent before (its `stop`) still counts. */
  closeAll(code: number, reason: string): void {
    this.currentLeg = null;
    for (const socket of this.streams.keys()) closeQuietly(socket, code, reason);
  }

  /** Per frame: synchronous for audio and marks (no promise, no await); lifecycle frames go on to `onFrame`. */
  private message(ws: WebSocket, stream: Stream, message: string | ArrayBuffer): void {
    try {
      const size = typeof message === "string" ? message.length : message.byteLength;
      if (size > MAX_CARRIER_MESSAGE_BYTES) {
        ws.close(1009, "message too big");
        return;
      }
      if (!stream.open) return;
      const { attachment } = stream;
      const carrier = attachment.carrier.name;
      const frame = typeof message === "string" ? stream.protocol.parse(message) : null;
      if (!frame) {
        return;
      }
      if (frame.type === "start" && !attachment.authenticated) {
        const expected = attachment.expectedCredential;
        if (!expected || !constantTimeEqualText(frame.credential ?? "", expected)) {
          this.hooks.log().warn("security.media_credential_rejected", { carrier });
          this.refuse(ws, "unauthorized");
          return;
        }
        this.attach(stream, { ...attachment, authenticated: true, streamSid: frame.streamId, encoding: frame.encoding });
        if (stream.startTimer) clearTimeout(stream.startTimer);
        stream.startTimer = null;
        this.replaceAllBut(ws);
      } else if (frame.type === "start") {
        this.attach(stream, { ...attachment, streamSid: frame.streamId, encoding: frame.encoding });
      } else if (!attachment.authenticated && frame.type !== "connected") {
        this.refuse(ws, "start first");
        return;
      }
      if (frame.type === "audio") {
        // Audio is decoded only as its stream's `start` says, never as a guess: before a `start` naming an encoding
        // the platform decodes (Telnyx may deliver a frame or two ahead of it), it is dropped.
        if (!attachment.encoding) return;
        // Audio payloads are forwarded as they are, and some adapters splice them into JSON unescaped.
        const decodedBytes = canonicalBase64Bytes(frame.payload, scratch);
        if (decodedBytes < 0) return;
        stream.lateness.heard(frame.sentMs);
        // The decoded bytes go along (turn detection reads them) unless the frame waits to be put in order.
        if (stream.reorder) stream.reorder.push(frame.chunk, frame.payload);
        else this.hooks.onAudio(frame.payload, scratch.subarray(0, decodedBytes));
        return;
      }
      if (frame.type === "mark") {
        this.hooks.onMark(frame.name);
        return;
      }
      if (frame.type === "carrier_error") this.hooks.log().warn("media.carrier_error", { code: frame.code, detail: frame.detail });
      this.hooks.onFrame(frame);
    } catch (error) {
      this.failed(error);
    }
  }

  private failed(error: unknown): void {
    this.hooks.log().error("media.handler_failed", { error });
  }

  /** The authenticated carrier stream as the caller's leg of the conversation, or null while there is none. */
  leg(): CallerLeg | null {
    // The cached leg is forgotten when its socket closes or is replaced (closed, closeAll, attach): no readyState
    // read on every frame.
    if (this.currentLeg) return this.currentLeg.leg;
    for (const [socket, { protocol, attachment }] of this.streams) {
      if (!attachment.authenticated || !attachment.encoding || socket.readyState !== WebSocket.OPEN) continue;
      const send = (text: string) => {
        try {
          socket.send(text);
        } catch {
          // A send racing the socket's close: its close event forgets the leg.
        }
      };
      const leg: CallerLeg = {
        // A-law in and µ-law back (or the reverse) is a stream Telnyx was told to play back in another codec.
        inbound: { encoding: attachment.encoding, sampleRate: 8000 },
        outbound: { encoding: attachment.playback, sampleRate: 8000 },
        echoesMarks: true,
        sendAudio: (payload) => send(protocol.audio(payload)),
        mark: (name) => send(protocol.mark(name)),
        clear: () => send(protocol.clear()),
      };
      this.currentLeg = { socket, leg };
      return leg;
    }
    return null;
  }

  closed(ws: WebSocket, code: number): void {
    this.forget(ws);
    if (this.currentLeg?.socket === ws) this.currentLeg = null;
    closeQuietly(ws, sendableCloseCode(code), "closing");
    this.hooks.onClosed();
  }

  /** An authenticated stream is now the call's: every other stream (the one it replaces, any pending) is closed. */
  private replaceAllBut(current: WebSocket): void {
    for (const socket of this.streams.keys()) {
      if (socket === current) continue;
      if (this.currentLeg?.socket === socket) this.currentLeg = null;
      closeQuietly(socket, 1000, "replaced by a new stream");
    }
  }

  /** Keeps the streams waiting to authenticate under MAX_PENDING_STREAMS by closing the oldest. */
  private limitPending(): void {
    const pending = [...this.streams].filter(([, stream]) => !stream.attachment.authenticated).map(([socket]) => socket);
    for (const socket of pending.slice(0, Math.max(0, pending.length - MAX_PENDING_STREAMS + 1))) this.refuse(socket, "too many streams");
  }

  private refuse(ws: WebSocket, reason: string): void {
    // Forgotten at once: a refused stream's later messages are not read.
    this.forget(ws);
    closeQuietly(ws, 1008, reason);
  }

  private forget(ws: WebSocket): void {
    const stream = this.streams.get(ws);
    if (!stream) return;
    stream.open = false;
    stream.lateness.ended();
    if (stream.startTimer) clearTimeout(stream.startTimer);
    this.streams.delete(ws);
  }

  private attach(stream: Stream, attachment: Attachment): void {
    stream.attachment = attachment;
    this.currentLeg = null;
  }
}
