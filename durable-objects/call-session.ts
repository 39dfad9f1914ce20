import { DurableObject } from "cloudflare:workers";
import { parseSettings, type ProviderName } from "../workers/config/settings";
import { rememberCarrierCall } from "../workers/db/directory";
import type { CallStatus, Carrier } from "../workers/db/schema";
import { createLogger, type Logger } from "../workers/http/logger";
import { increment } from "../workers/observability/counters";
import { constantTimeEqualText } from "../workers/security/constant-time";
import { randomToken } from "../workers/security/encoding";
import type { CarrierEvent, CallSignal } from "../workers/telephony/events";
import { CallStore, type CallEventRow, type CallRecord } from "./call/call-store";
import { syncToD1 } from "./call/d1-sync";
import { CarrierLink } from "./call/carrier-link";
import { decideTransition, isTerminal, type TransitionSource } from "./call/state-machine";
import type { MediaFrame } from "./media/carriers/media-frames";
import { MediaSockets } from "./media/media-sockets";

export interface OpenCallInput {
  sessionId: string;
  tenantId: string;
  correlationId: string;
  event: CarrierEvent;
  route: { provider: ProviderName | null; instructions: string | null; codec: "PCMU" | "PCMA" };
}

export type OpenCallResult = { kind: "stream"; sessionId: string; mediaToken: string } | { kind: "ended" };

export type EventOutcome = "applied" | "ignored" | "rejected" | "duplicate" | "unknown_call";

const OUTBOX_BATCH = 50;
const FLUSH_RETRY_MS = [2_000, 5_000, 15_000, 60_000, 300_000];

/**
 * One object per session: the single writer of its call's state. Carrier webhooks arrive here through the Worker
 * (already authenticated), so concurrent and out-of-order callbacks are serialised; every change is stored here
 * first (hot), then drained to D1 (durable), with the KV call → session index written once.
 */
export class CallSession extends DurableObject<Env> {
  private readonly store: CallStore;
  private record: CallRecord | null;
  private readonly media: MediaSockets;
  private flushChain: Promise<void> = Promise.resolve();
  private flushFailures = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new CallStore(ctx.storage.sql);
    this.record = this.store.load();
    this.media = new MediaSockets(ctx, {
      mediaToken: () => this.record?.mediaToken,
      onFrame: (frame) => this.onMediaFrame(frame),
      log: () => this.log(),
    });
  }

  private log(correlationId?: string): Logger {
    return createLogger({
      correlationId: correlationId ?? this.record?.correlationId ?? "unknown",
      tenantId: this.record?.tenantId,
      sessionId: this.record?.sessionId,
      callId: this.record?.callId,
    });
  }

  /** The first webhook of an inbound call (Twilio voice, Telnyx call.initiated); retries get the same answer. */
  async openCall(input: OpenCallInput): Promise<OpenCallResult> {
    if (!this.record) {
      const now = Date.now();
      const event = input.event;
      this.record = {
        sessionId: input.sessionId,
        tenantId: input.tenantId,
        callId: crypto.randomUUID(),
        carrier: event.carrier,
        carrierCallId: event.carrierCallId,
        direction: "inbound",
        from: event.from ?? "unknown",
        to: event.to ?? "unknown",
        status: "initiated",
        failureReason: null,
        answeredAt: null,
        endedAt: null,
        createdAt: now,
        updatedAt: now,
        provider: input.route.provider ?? parseSettings(this.env).values.DEFAULT_PROVIDER ?? "local",
        instructions: input.route.instructions,
        codec: input.route.codec,
        correlationId: input.correlationId,
        mediaToken: randomToken(),
        lastCarrierSequence: null,
        eventSeq: 0,
        stream: { state: "none", streamId: null, encoding: null },
        carrierIndexed: false,
        answerCommanded: false,
      };
      this.recordEvent("carrier", "call.opened", { from: null, to: "initiated", outcome: "applied" });
      this.log(input.correlationId).info("call.opened", { carrier: event.carrier, direction: "inbound" });
    }
    await this.applyCarrierEvent(input.event, input.correlationId);
    if (isTerminal(this.record.status)) return { kind: "ended" };
    if (this.record.carrier === "telnyx" && !this.record.answerCommanded) this.ctx.waitUntil(this.carrier().answer());
    return { kind: "stream", sessionId: this.record.sessionId, mediaToken: this.record.mediaToken };
  }

  /** A carrier asking for the media instructions of a call this object already owns (an answered outbound call). */
  async connectCall(event: CarrierEvent, correlationId: string): Promise<OpenCallResult | { kind: "unknown" }> {
    if (!this.record) return { kind: "unknown" };
    await this.applyCarrierEvent(event, correlationId);
    if (isTerminal(this.record.status)) return { kind: "ended" };
    return { kind: "stream", sessionId: this.record.sessionId, mediaToken: this.record.mediaToken };
  }

  async applyCarrierEvent(event: CarrierEvent, correlationId: string): Promise<EventOutcome> {
    const record = this.record;
    const log = this.log(correlationId);
    if (!record) {
      log.warn("call.event_for_unknown_call", { carrier: event.carrier, event: event.name });
      return "unknown_call";
    }
    if (!this.store.firstDelivery(event.dedupeKey, Date.now())) {
      increment("carrier_events_duplicate_total", { carrier: event.carrier });
      return "duplicate";
    }
    record.carrierCallId ??= event.carrierCallId;
    const carrierMeta = { carrierSequence: event.sequence ?? null, carrierTimestamp: event.occurredAt };
    const outOfOrder = event.sequence !== undefined && record.lastCarrierSequence !== null && event.sequence < record.lastCarrierSequence;
    if (event.sequence !== undefined && !outOfOrder) record.lastCarrierSequence = event.sequence;

    const target = outOfOrder ? null : this.targetOf(event.signal);
    const outcome = target
      ? this.transition(target.status, "carrier", event.name, target.reason, carrierMeta)
      : this.recordEvent("carrier", event.name, {
          from: record.status,
          to: null,
          outcome: outOfOrder ? "ignored" : "applied",
          detail: outOfOrder ? "out_of_order" : describe(event.signal),
          ...carrierMeta,
        });
    await this.flush();
    return outcome;
  }

  /** What a carrier signal asks of the state machine, if anything. */
  private targetOf(signal: CallSignal): { status: CallStatus; reason?: string } | null {
    const record = this.record!;
    switch (signal.kind) {
      case "status":
        return { status: signal.status, reason: signal.reason };
      case "hangup":
        return record.answeredAt !== null || signal.answered
          ? { status: "completed", reason: signal.cause }
          : { status: "failed", reason: signal.cause };
      case "bridged":
        return record.status === "transferring" ? { status: "transferred" } : null;
      default:
        return null;
    }
  }

  /** Applies (or records the refusal of) one move of the state machine; storage writes are synchronous. */
  private transition(
    to: CallStatus,
    source: TransitionSource,
    event: string,
    reason?: string,
    carrierMeta: { carrierSequence: number | null; carrierTimestamp: number | null } = { carrierSequence: null, carrierTimestamp: null },
  ): "applied" | "ignored" | "rejected" {
    const record = this.record!;
    const verdict = decideTransition(record.status, to, source);
    if (verdict.outcome === "applied") {
      const now = Date.now();
      record.status = to;
      if (to === "in_progress" && record.answeredAt === null) record.answeredAt = now;
      if (isTerminal(to)) {
        record.endedAt = now;
        record.failureReason = to === "failed" ? (reason ?? "carrier_failure") : null;
        this.media.closeAll(1000, "call ended");
      }
      record.updatedAt = now;
    } else if (verdict.outcome === "rejected") {
      this.log().warn("call.transition_rejected", { from: verdict.from, to, event });
    }
    return this.recordEvent(source, event, {
      from: verdict.from,
      to,
      outcome: verdict.outcome,
      detail: verdict.outcome === "applied" ? (reason ?? null) : verdict.why,
      ...carrierMeta,
    });
  }

  private recordEvent(
    source: CallEventRow["source"],
    event: string,
    fields: { from: CallStatus | null; to: CallStatus | null; outcome: CallEventRow["outcome"]; detail?: string | null; carrierSequence?: number | null; carrierTimestamp?: number | null },
  ): CallEventRow["outcome"] {
    const record = this.record!;
    record.eventSeq += 1;
    this.store.append({
      seq: record.eventSeq,
      source,
      event,
      fromStatus: fields.from,
      toStatus: fields.to,
      outcome: fields.outcome,
      carrierSequence: fields.carrierSequence ?? null,
      carrierTimestamp: fields.carrierTimestamp ?? null,
      detail: fields.detail ?? null,
      occurredAt: Date.now(),
    });
    this.store.save(record);
    return fields.outcome;
  }

  /** Drains the outbox to D1, one flush at a time so an older state can never land after a newer one. */
  private flush(): Promise<void> {
    this.flushChain = this.flushChain.then(() => this.flushOnce());
    return this.flushChain;
  }

  private async flushOnce(): Promise<void> {
    const record = this.record;
    if (!record) return;
    const pending = this.store.pending(OUTBOX_BATCH);
    if (pending.length === 0) return;
    try {
      await syncToD1(this.env, record, pending.map((item) => item.event));
      this.store.acknowledge(pending.at(-1)!.id);
      this.flushFailures = 0;
      if (!record.carrierIndexed && record.carrierCallId) {
        await rememberCarrierCall(this.env, record.carrier, record.carrierCallId, { sessionId: record.sessionId, tenantId: record.tenantId });
        record.carrierIndexed = true;
        this.store.save(record);
      }
      if (this.store.pending(1).length > 0) await this.flushOnce();
    } catch (error) {
      const delay = FLUSH_RETRY_MS[Math.min(this.flushFailures, FLUSH_RETRY_MS.length - 1)]!;
      this.flushFailures += 1;
      increment("call_d1_sync_failures_total");
      this.log().warn("call.d1_sync_deferred", { error, retryInMs: delay, pending: pending.length });
      await this.ctx.storage.setAlarm(Date.now() + delay);
    }
  }

  override async alarm(): Promise<void> {
    await this.flush();
  }

  private carrier(): CarrierLink {
    return new CarrierLink(this.env, this.record!, {
      markAnswerCommanded: () => {
        this.record!.answerCommanded = true;
        this.store.save(this.record!);
      },
      onCommandFailed: (what, reason) => {
        this.transition("failed", "system", `carrier.${what}_failed`, reason);
        return this.flush();
      },
      log: this.log(),
    });
  }

  /** Carrier media WebSocket upgrades, forwarded by the Worker after its checks. */
  override async fetch(request: Request): Promise<Response> {
    const record = this.record;
    const route = /^\/telephony\/(twilio|telnyx)\/media\/([^/]+)(?:\/([^/]+))?$/.exec(new URL(request.url).pathname);
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new Response("Expected a WebSocket upgrade", { status: 426 });
    if (!route || !record || record.sessionId !== route[2] || record.carrier !== (route[1] as Carrier)) {
      return new Response("Unknown call", { status: 404 });
    }
    if (isTerminal(record.status)) return new Response("Call has ended", { status: 410 });
    const correlationId = request.headers.get("X-Correlation-ID") ?? record.correlationId;
    if (record.carrier === "telnyx" && !constantTimeEqualText(route[3] ?? "", record.mediaToken)) {
      increment("webhook_rejected_total", { carrier: "telnyx", layer: "media_token" });
      this.log(correlationId).warn("security.media_token_rejected", { carrier: "telnyx" });
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
    this.log().warn("media.socket_error", { error });
    await this.media.closed(ws, 1011);
  }

  /** Lifecycle frames from the carrier's media socket (audio itself is not persisted). */
  private async onMediaFrame(frame: MediaFrame): Promise<void> {
    const record = this.record;
    if (!record) return;
    if (frame.type === "start") {
      record.stream = { state: "started", streamId: frame.streamId, encoding: frame.encoding };
      this.recordEvent("carrier", "media.start", { from: record.status, to: null, outcome: "applied", detail: frame.encoding });
      await this.flush();
    } else if (frame.type === "stop") {
      record.stream = { ...record.stream, state: "stopped" };
      this.recordEvent("carrier", "media.stop", { from: record.status, to: null, outcome: "applied" });
      await this.flush();
    } else if (frame.type === "dtmf") {
      this.recordEvent("carrier", "media.dtmf", { from: record.status, to: null, outcome: "applied", detail: frame.digit });
      await this.flush();
    }
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
