import type { Carrier } from "../../workers/db/schema";
import type { Logger } from "../../workers/http/logger";
import { increment } from "../../workers/observability/counters";
import { constantTimeEqualText } from "../../workers/security/constant-time";
import type { CarrierMediaProtocol, MediaFrame } from "./carriers/media-frames";
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

interface Attachment {
  carrier: Carrier;
  authenticated: boolean;
  correlationId: string;
  streamSid?: string;
}

interface Hooks {
  mediaToken(): string | undefined;
  onFrame(frame: MediaFrame): Promise<void>;
  log(): Logger;
}

export class MediaSockets {
  private readonly protocols = new Map<WebSocket, CarrierMediaProtocol>();
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
    for (const socket of this.ctx.getWebSockets(CARRIER_TAG)) {
      this.protocols.delete(socket);
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
      const attachment = ws.deserializeAttachment() as Attachment;
      const frame = typeof message === "string" ? this.protocolOf(ws, attachment).parse(message) : null;
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
        ws.serializeAttachment({ ...attachment, authenticated: true, streamSid: frame.streamId } satisfies Attachment);
      } else if (!attachment.authenticated && frame.type !== "connected") {
        increment("media_messages_rejected_total", { reason: "unauthenticated", carrier: attachment.carrier });
        ws.close(1008, "start first");
        return;
      }
      if (frame.type === "audio") {
        this.audioFramesIn += 1;
        return;
      }
      if (frame.type === "carrier_error") this.hooks.log().warn("media.carrier_error", { code: frame.code, detail: frame.detail });
      await this.hooks.onFrame(frame);
    } catch (error) {
      increment("media_handler_errors_total");
      this.hooks.log().error("media.handler_failed", { error });
    }
  }

  async closed(ws: WebSocket, code: number): Promise<void> {
    this.protocols.delete(ws);
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "closing");
    } catch {
      // The socket is already closed.
    }
  }

  private protocolOf(ws: WebSocket, attachment: Attachment): CarrierMediaProtocol {
    let protocol = this.protocols.get(ws);
    if (!protocol) {
      protocol = attachment.carrier === "twilio" ? twilioMedia(attachment.streamSid) : telnyxMedia();
      this.protocols.set(ws, protocol);
    }
    return protocol;
  }
}
