import type { Carrier } from "../../workers/db/schema";
import type { Logger } from "../../workers/http/logger";
import { increment } from "../../workers/observability/counters";
import { constantTimeEqualText } from "../../workers/security/constant-time";
import type { CallerLeg } from "../voice/voice-session";
import type { AudioEncoding, CarrierMediaProtocol, MediaFrame } from "./carriers/media-frames";
import { ReorderWindow } from "./carriers/reorder-window";
import { telnyxMedia } from "./carriers/telnyx-media";
import { twilioMedia } from "./carriers/twilio-media";

/**
 * The carrier's media WebSocket inside the call's object: accepted through the Hibernation API, authenticated
 * (Twilio's per-call token arrives in `start`; Telnyx's was checked in the path before the upgrade), bounded, and
 * translated to MediaFrames. It never throws out of a socket handler: bad input is counted and skipped.
 */
const CARRIER_TAG = "carrier";
/** A media frame is ~300 bytes and `start` a few KiB; anything near this is not a carrier speaking. */
export const MAX_CARRIER_MESSAGE_BYTES = 16 * 1024;
/** Telnyx frames may arrive out of order: up to this many wait for a gap to fill (60 ms of audio). */
const REORDER_WINDOW_FRAMES = 3;
/** Canonical base64: audio payloads are forwarded as they are (some adapters splice them into JSON unescaped). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

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
  /** Caller audio, in order, on the per-frame path: must not await. */
  onAudio(payload: string): void;
  log(): Logger;
}

interface Stream {
  protocol: CarrierMediaProtocol;
  reorder: ReorderWindow | null;
  /** The socket's attachment, kept here so the per-frame path does not deserialize it for every frame. */
  attachment: Attachment;
}

export class MediaSockets {
  private readonly streams = new Map<WebSocket, Stream>();
  private currentLeg: { socket: WebSocket; leg: CallerLeg } | null = null;
  audioFramesIn = 0;

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly hooks: Hooks,
  ) {}

  accept(carrier: Carrier, correlationId: string): Response {
    // A carrier reconnecting (after a deploy or network blip) replaces the old stream.
    this.closeAll(1000, "replaced by a new stream");
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [CARRIER_TAG]);
    server.serializeAttachment({ carrier, authenticated: carrier === "telnyx", correlationId } satisfies Attachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  closeAll(code: number, reason: string): void {
    this.currentLeg = null;
    for (const socket of this.ctx.getWebSockets(CARRIER_TAG)) {
      this.streams.delete(socket);
      try {
        socket.close(code, reason);
      } catch {
        // Already closing.
      }
    }
  }

  async message(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      const size = typeof message === "string" ? message.length : message.byteLength;
      if (size > MAX_CARRIER_MESSAGE_BYTES) {
        increment("media_messages_rejected_total", { reason: "oversized" });
        ws.close(1009, "message too big");
        return;
      }
      const stream = this.streamOf(ws);
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
        this.attach(ws, stream, { ...attachment, authenticated: true, streamSid: frame.streamId, encoding: frame.encoding });
      } else if (frame.type === "start") {
        this.attach(ws, stream, { ...attachment, encoding: frame.encoding });
      } else if (!attachment.authenticated && frame.type !== "connected") {
        increment("media_messages_rejected_total", { reason: "unauthenticated", carrier: attachment.carrier });
        ws.close(1008, "start first");
        return;
      }
      if (frame.type === "audio") {
        if (!BASE64.test(frame.payload)) {
          increment("media_messages_rejected_total", { reason: "bad_payload", carrier: attachment.carrier });
          return;
        }
        this.audioFramesIn += 1;
        if (stream.reorder) stream.reorder.push(frame.chunk, frame.payload);
        else this.hooks.onAudio(frame.payload);
        return;
      }
      if (frame.type === "carrier_error") this.hooks.log().warn("media.carrier_error", { code: frame.code, detail: frame.detail });
      await this.hooks.onFrame(frame);
    } catch (error) {
      increment("media_handler_errors_total");
      this.hooks.log().error("media.handler_failed", { error });
    }
  }

  /** The authenticated carrier stream as the caller's leg of the conversation, or null while there is none. */
  leg(): CallerLeg | null {
    const current = this.currentLeg;
    if (current && current.socket.readyState === WebSocket.OPEN) return current.leg;
    this.currentLeg = null;
    for (const socket of this.ctx.getWebSockets(CARRIER_TAG)) {
      const { protocol, attachment } = this.streamOf(socket);
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

  async closed(ws: WebSocket, code: number): Promise<void> {
    this.streams.delete(ws);
    if (this.currentLeg?.socket === ws) this.currentLeg = null;
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "closing");
    } catch {
      // The socket is already closed.
    }
  }

  /** The socket's stream state, rebuilt from its attachment after the object woke from hibernation. */
  private streamOf(ws: WebSocket): Stream {
    let stream = this.streams.get(ws);
    if (!stream) {
      const attachment = ws.deserializeAttachment() as Attachment;
      stream =
        attachment.carrier === "twilio"
          ? { protocol: twilioMedia(attachment.streamSid), reorder: null, attachment }
          : { protocol: telnyxMedia(), reorder: new ReorderWindow(REORDER_WINDOW_FRAMES, (payload) => this.hooks.onAudio(payload)), attachment };
      this.streams.set(ws, stream);
    }
    return stream;
  }

  private attach(ws: WebSocket, stream: Stream, attachment: Attachment): void {
    ws.serializeAttachment(attachment);
    stream.attachment = attachment;
    this.currentLeg = null;
  }
}
