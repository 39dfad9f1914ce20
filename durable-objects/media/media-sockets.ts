import { constantTimeEqualText } from "../../workers/shared/constant-time.ts";
import { increment } from "../../workers/shared/counters.ts";
import type { Carrier } from "../../workers/shared/db/schema.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import { isCanonicalBase64 } from "./audio/pcm16.ts";
import type { CallerLeg } from "./caller-leg.ts";
import type { AudioEncoding, CarrierMediaProtocol, MediaFrame } from "./carriers/media-frames.ts";
import { ReorderWindow } from "./carriers/reorder-window.ts";
import { telnyxMedia } from "./carriers/telnyx-media.ts";
import { twilioMedia } from "./carriers/twilio-media.ts";

/**
 * The carrier's media WebSocket inside the call's object: authenticated (Twilio's per-call token arrives in
 * `start`; Telnyx's was checked in the path before the upgrade), bounded, and translated to MediaFrames. It never
 * throws out of a socket handler: bad input is counted and skipped.
 *
 * Accepted as a plain (not hibernatable) socket: a hibernatable socket's every message is a separate event
 * dispatched into the object, measured at ~1 ms a message locally against ~0.17 ms for a plain socket's listener,
 * and a live call cannot hibernate anyway (its provider socket keeps the object in memory). An object that is
 * restarted (a deploy) loses the socket; the carrier's reconnect is re-attached to the call.
 */ /** A media frame is ~300 bytes and `start` a few KiB; anything near this is not a carrier speaking. */
export const MAX_CARRIER_MESSAGE_BYTES = 16 * 1024;
/** Telnyx frames may arrive out of order: up to this many wait for a gap to fill (60 ms of audio). */
const REORDER_WINDOW_FRAMES = 3;

interface Attachment {
  carrier: Carrier;
  authenticated: boolean;
  correlationId: string;
  streamSid?: string;
  encoding?: AudioEncoding;
}

interface Hooks {
  mediaToken(): string | undefined;
  onFrame(frame: MediaFrame): Promise<void>;
  /** A mark the carrier echoed (one per agent chunk played), on the per-frame path: must not await. */
  onMark(name: string): void;
  /** Caller audio, in order, on the per-frame path: must not await. */
  onAudio(payload: string): void;
  log(): Logger;
}

interface Stream {
  protocol: CarrierMediaProtocol;
  reorder: ReorderWindow | null;
  attachment: Attachment;
}

export class MediaSockets {
  private readonly streams = new Map<WebSocket, Stream>();
  private currentLeg: { socket: WebSocket; leg: CallerLeg } | null = null;
  /** Where each payload is decoded to check it is canonical base64 (payloads are at most 3/4 of a message). */
  private readonly scratch = new Uint8Array((MAX_CARRIER_MESSAGE_BYTES * 3) / 4);

  constructor(private readonly hooks: Hooks) {}

  accept(carrier: Carrier, correlationId: string): Response {
    // A carrier reconnecting (after a deploy or network blip) replaces the old stream.
    this.closeAll(1000, "replaced by a new stream");
    const { 0: client, 1: server } = new WebSocketPair();
    server.accept();
    const attachment: Attachment = { carrier, authenticated: carrier === "telnyx", correlationId };
    const reorder = carrier === "telnyx" ? new ReorderWindow(REORDER_WINDOW_FRAMES, (payload) => this.hooks.onAudio(payload)) : null;
    this.streams.set(server, { protocol: carrier === "twilio" ? twilioMedia() : telnyxMedia(), reorder, attachment });
    server.addEventListener("message", (event) => this.message(server, event.data as string | ArrayBuffer));
    server.addEventListener("close", (event) => this.closed(server, event.code));
    server.addEventListener("error", () => this.closed(server, 1011));
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Closes every stream; each is forgotten on its close event, so what the carrier sent before (its `stop`) still counts. */
  closeAll(code: number, reason: string): void {
    this.currentLeg = null;
    for (const socket of this.streams.keys()) {
      try {
        socket.close(code, reason);
      } catch {
        // Already closing.
      }
    }
  }

  /** Per frame: synchronous for audio and marks (no promise, no await); lifecycle frames go on to `onFrame`. */
  message(ws: WebSocket, message: string | ArrayBuffer): void {
    try {
      const size = typeof message === "string" ? message.length : message.byteLength;
      if (size > MAX_CARRIER_MESSAGE_BYTES) {
        increment("media_messages_rejected_total", { reason: "oversized" });
        ws.close(1009, "message too big");
        return;
      }
      const stream = this.streams.get(ws);
      if (!stream) return;
      const { attachment } = stream;
      const frame = typeof message === "string" ? stream.protocol.parse(message) : null;
      if (!frame) {
        increment("media_messages_rejected_total", { reason: "malformed", carrier: attachment.carrier });
        return;
      }
      if (frame.type === "start" && attachment.carrier === "twilio") {
        const expected = this.hooks.mediaToken();
        if (!expected || !constantTimeEqualText(frame.customParameters.token ?? "", expected)) {
          increment("webhook_rejected_total", { carrier: "twilio", layer: "media_token" });
          this.hooks.log().warn("security.media_token_rejected", { carrier: "twilio" });
          ws.close(1008, "unauthorized");
          return;
        }
        this.attach(stream, { ...attachment, authenticated: true, streamSid: frame.streamId, encoding: frame.encoding });
      } else if (frame.type === "start") {
        this.attach(stream, { ...attachment, encoding: frame.encoding });
      } else if (!attachment.authenticated && frame.type !== "connected") {
        increment("media_messages_rejected_total", { reason: "unauthenticated", carrier: attachment.carrier });
        ws.close(1008, "start first");
        return;
      }
      if (frame.type === "audio") {
        // Audio payloads are forwarded as they are, and some adapters splice them into JSON unescaped.
        if (!isCanonicalBase64(frame.payload, this.scratch)) {
          increment("media_messages_rejected_total", { reason: "bad_payload", carrier: attachment.carrier });
          return;
        }
        if (stream.reorder) stream.reorder.push(frame.chunk, frame.payload);
        else this.hooks.onAudio(frame.payload);
        return;
      }
      if (frame.type === "mark") {
        this.hooks.onMark(frame.name);
        return;
      }
      if (frame.type === "carrier_error") this.hooks.log().warn("media.carrier_error", { code: frame.code, detail: frame.detail });
      this.hooks.onFrame(frame).catch((error: unknown) => this.failed(error));
    } catch (error) {
      this.failed(error);
    }
  }

  private failed(error: unknown): void {
    increment("media_handler_errors_total");
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
          increment("media_sends_failed_total", { carrier: attachment.carrier });
        }
      };
      const leg: CallerLeg = {
        format: { encoding: attachment.encoding, sampleRate: 8000 },
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
    this.streams.delete(ws);
    if (this.currentLeg?.socket === ws) this.currentLeg = null;
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "closing");
    } catch {
      // The socket is already closed.
    }
  }

  private attach(stream: Stream, attachment: Attachment): void {
    stream.attachment = attachment;
    this.currentLeg = null;
  }
}
