import { DurableObject } from "cloudflare:workers";
import { parseSettings, type ProviderName } from "../workers/config/settings";
import type { CallStatus, Carrier } from "../workers/db/schema";
import { increment } from "../workers/observability/counters";
import { constantTimeEqualText } from "../workers/security/constant-time";
import type { CallSignal, CarrierEvent } from "../workers/telephony/events";
import { controlCall, placeCall, reasonOf, reconcileCall, type ControlCommand, type ControlResult, type PlaceCallInput, type PlaceCallResult } from "./call/call-commands";
import { CallLedger } from "./call/call-ledger";
import { CarrierLink } from "./call/carrier-link";
import { isTerminal } from "./call/state-machine";
import type { MediaFrame } from "./media/carriers/media-frames";
import { MediaSockets } from "./media/media-sockets";

export type { ControlCommand, ControlResult, PlaceCallInput, PlaceCallResult } from "./call/call-commands";

export interface OpenCallInput {
  sessionId: string;
  tenantId: string;
  correlationId: string;
  event: CarrierEvent;
  route: { provider: ProviderName | null; instructions: string | null; codec: "PCMU" | "PCMA" };
}

export type OpenCallResult = { kind: "stream"; sessionId: string; mediaToken: string } | { kind: "ended" };

export type EventOutcome = "applied" | "ignored" | "rejected" | "duplicate" | "unknown_call";

/**
 * One object per session: the single writer of its call's state. Carrier webhooks arrive here through the Worker
 * (already authenticated), so concurrent and out-of-order callbacks are serialised; the ledger stores every change
 * here first (hot) and drains it to D1 (durable).
 */
export class CallSession extends DurableObject<Env> {
  private readonly ledger: CallLedger;
  private readonly media: MediaSockets;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.ledger = new CallLedger(ctx, env, () => this.media.closeAll(1000, "call ended"));
    this.media = new MediaSockets(ctx, {
      mediaToken: () => this.ledger.record?.mediaToken,
      onFrame: (frame) => this.onMediaFrame(frame),
      log: () => this.ledger.log(),
    });
  }

  private carrier = () => new CarrierLink(this.env, this.ledger.record!, this.ledger.log());

  /** The first webhook of an inbound call (Twilio voice, Telnyx call.initiated); retries get the same answer. */
  async openCall(input: OpenCallInput): Promise<OpenCallResult> {
    if (!this.ledger.record) {
      const { event } = input;
      this.ledger.create(
        {
          sessionId: input.sessionId,
          tenantId: input.tenantId,
          callId: crypto.randomUUID(),
          carrier: event.carrier,
          carrierCallId: event.carrierCallId,
          direction: "inbound",
          from: event.from ?? "unknown",
          to: event.to ?? "unknown",
          provider: input.route.provider ?? parseSettings(this.env).values.DEFAULT_PROVIDER ?? "local",
          instructions: input.route.instructions,
          codec: input.route.codec,
          correlationId: input.correlationId,
          answerCommanded: false,
        },
        "call.opened",
      );
      this.ledger.log(input.correlationId).info("call.opened", { carrier: event.carrier, direction: "inbound" });
    }
    return this.connectCall(input.event, input.correlationId) as Promise<OpenCallResult>;
  }

  /** A carrier asking for the media instructions of a call this object owns (retries, answered outbound calls). */
  async connectCall(event: CarrierEvent, correlationId: string): Promise<OpenCallResult | { kind: "unknown" }> {
    const record = this.ledger.record;
    if (!record) return { kind: "unknown" };
    await this.applyCarrierEvent(event, correlationId);
    if (isTerminal(record.status)) return { kind: "ended" };
    if (record.carrier === "telnyx" && !record.answerCommanded) this.ctx.waitUntil(this.answerTelnyx());
    return { kind: "stream", sessionId: record.sessionId, mediaToken: record.mediaToken };
  }

  async applyCarrierEvent(event: CarrierEvent, correlationId: string): Promise<EventOutcome> {
    const record = this.ledger.record;
    if (!record) {
      this.ledger.log(correlationId).warn("call.event_for_unknown_call", { carrier: event.carrier, event: event.name });
      return "unknown_call";
    }
    if (!this.ledger.firstDelivery(event.dedupeKey)) {
      increment("carrier_events_duplicate_total", { carrier: event.carrier });
      return "duplicate";
    }
    record.carrierCallId ??= event.carrierCallId;
    const carrierMeta = { carrierSequence: event.sequence ?? null, carrierTimestamp: event.occurredAt };
    const outOfOrder = event.sequence !== undefined && record.lastCarrierSequence !== null && event.sequence < record.lastCarrierSequence;
    if (event.sequence !== undefined && !outOfOrder) record.lastCarrierSequence = event.sequence;

    const target = outOfOrder ? null : this.targetOf(event.signal);
    const outcome = target
      ? this.ledger.transition(target.status, "carrier", event.name, target.reason, carrierMeta)
      : this.ledger.note("carrier", event.name, {
          from: record.status,
          to: null,
          outcome: outOfOrder ? "ignored" : "applied",
          detail: outOfOrder ? "out_of_order" : describe(event.signal),
          ...carrierMeta,
        });
    await this.ledger.flush();
    return outcome;
  }

  /** What a carrier signal asks of the state machine, if anything. */
  private targetOf(signal: CallSignal): { status: CallStatus; reason?: string } | null {
    const record = this.ledger.record!;
    switch (signal.kind) {
      case "status":
        return { status: signal.status, reason: signal.reason };
      case "hangup":
        return record.answeredAt !== null || signal.answered ? { status: "completed", reason: signal.cause } : { status: "failed", reason: signal.cause };
      case "bridged":
        return record.status === "transferring" ? { status: "transferred" } : null;
      default:
        return null;
    }
  }

  private async answerTelnyx(): Promise<void> {
    try {
      await this.carrier().answer();
      this.ledger.record!.answerCommanded = true;
      this.ledger.save();
    } catch (error) {
      this.carrier().logFailure("answer", error);
      this.ledger.transition("failed", "system", "carrier.answer_failed", reasonOf(error));
      await this.ledger.flush();
    }
  }

  placeCall(input: PlaceCallInput): Promise<PlaceCallResult> {
    return placeCall(this.ledger, this.carrier, input);
  }

  control(command: ControlCommand, correlationId: string): Promise<ControlResult> {
    return controlCall(this.ledger, this.carrier, command, correlationId);
  }

  reconcile(): Promise<"terminal" | "live" | "finalized" | "unknown"> {
    return reconcileCall(this.ledger, this.carrier);
  }

  override async alarm(): Promise<void> {
    await this.ledger.flush();
  }

  /** Carrier media WebSocket upgrades, forwarded by the Worker after its checks. */
  override async fetch(request: Request): Promise<Response> {
    const record = this.ledger.record;
    const route = /^\/telephony\/(twilio|telnyx)\/media\/([^/]+)(?:\/([^/]+))?$/.exec(new URL(request.url).pathname);
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new Response("Expected a WebSocket upgrade", { status: 426 });
    if (!route || !record || record.sessionId !== route[2] || record.carrier !== (route[1] as Carrier)) {
      return new Response("Unknown call", { status: 404 });
    }
    if (isTerminal(record.status)) return new Response("Call has ended", { status: 410 });
    const correlationId = request.headers.get("X-Correlation-ID") ?? record.correlationId;
    if (record.carrier === "telnyx" && !constantTimeEqualText(route[3] ?? "", record.mediaToken)) {
      increment("webhook_rejected_total", { carrier: "telnyx", layer: "media_token" });
      this.ledger.log(correlationId).warn("security.media_token_rejected", { carrier: "telnyx" });
      return new Response("Forbidden", { status: 403 });
    }
    return this.media.accept(record.carrier, correlationId);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    await this.media.message(ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    await this.media.closed(ws, code);
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    this.ledger.log().warn("media.socket_error", { error });
    await this.media.closed(ws, 1011);
  }

  /** Lifecycle frames from the carrier's media socket go into the call's history (audio itself is not stored). */
  private async onMediaFrame(frame: MediaFrame): Promise<void> {
    const record = this.ledger.record;
    if (!record) return;
    const base = { from: record.status, to: null, outcome: "applied" as const };
    if (frame.type === "start") {
      record.stream = { state: "started", streamId: frame.streamId, encoding: frame.encoding };
      // A carrier streams only answered calls: an authenticated stream is the answer for calls whose carrier
      // reports none (Twilio sends inbound calls' `in-progress` callback only when asked, and our TwiML answers).
      if (record.status === "initiated" || record.status === "ringing") this.ledger.transition("in_progress", "carrier", "media.start", frame.encoding);
      else this.ledger.note("carrier", "media.start", { ...base, detail: frame.encoding });
    } else if (frame.type === "stop") {
      record.stream = { ...record.stream, state: "stopped" };
      this.ledger.note("carrier", "media.stop", base);
    } else if (frame.type === "dtmf") {
      this.ledger.note("carrier", "media.dtmf", { ...base, detail: frame.digit });
    } else {
      return;
    }
    await this.ledger.flush();
  }
}

function describe(signal: CallSignal): string | null {
  switch (signal.kind) {
    case "dtmf":
      return signal.digit;
    case "stream":
      return signal.reason ? `${signal.state}: ${signal.reason}` : signal.state;
    case "machine_detection":
      return signal.result;
    case "recording":
      return signal.recordingId ?? signal.state;
    default:
      return null;
  }
}
