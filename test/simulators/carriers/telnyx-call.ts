import type { CallHangup } from "telnyx/resources/webhooks";
import type { G711Codec } from "./audio.ts";
import type { CallerScript } from "./caller-script.ts";
import type { MediaClock } from "./clock.ts";
import type { Answerer, CallOutcome, PlatformTarget } from "./control.ts";
import { rewriteOrigin } from "./http.ts";
import { telnyxCallControlId, uuid } from "./ids.ts";
import { type MediaLeg, type MediaLegResult, startMediaLeg } from "./media-leg.ts";
import type { TelnyxSigner } from "./signing.ts";
import { telnyxMediaDialect } from "./telnyx-media.ts";
import type { Timeline } from "./timeline.ts";

/**
 * One Telnyx Call Control call as Telnyx runs it: signed webhooks to the platform, commands from the platform
 * (through the fake REST API), and a media stream per `stream_url`. Inbound calls start with `call.initiated` and
 * wait for `answer`; dialled calls ring, then answer or fail as the callee behaviour says.
 */
export interface TelnyxCallOptions {
  platform: PlatformTarget;
  signer: TelnyxSigner;
  callControlId?: string;
  callLegId?: string;
  callSessionId?: string;
  connectionId?: string;
  from: string;
  to: string;
  direction: "incoming" | "outgoing";
  /** Public URL for webhooks (a dial's `webhook_url`); default `${publicBaseUrl}/telephony/telnyx/webhook`. */
  webhookUrl?: string;
  /** client_state given at dial time, echoed in webhooks until a command replaces it. */
  clientState?: string;
  /** `stream_*` fields of the dial command: outbound calls stream as soon as they are answered. */
  dialStream?: Record<string, unknown>;
  outcome?: CallOutcome;
  answerDelayMs?: number;
  /** An unanswered inbound call is abandoned after this long. Default 20 s. */
  answerTimeoutMs?: number;
  hangUpAfterMs?: number;
  clock: MediaClock;
  timeline: Timeline;
  script: CallerScript;
  /** The call ends (time_limit) at this media time whatever happens. Default 120 s. */
  maxDurationMs?: number;
  media?: { reorderWindow?: number; duplicateEvery?: number; seed?: number };
  /** The dial's `answering_machine_detection`, and what answers. */
  machineDetection?: { mode: string; answeredBy: Answerer };
}

/** How long detection listens before its verdict, and how long a machine's greeting runs to its beep. */
const AMD_VERDICT_MS = 800;
const GREETING_MS = 2_000;
/** Modes whose machine verdict is followed by `call.machine.greeting.ended` once the greeting ends. */
const GREETING_MODES = new Set(["greeting_end", "detect_beep"]);

type HangupCause = NonNullable<CallHangup.Payload["hangup_cause"]>;
type HangupSource = NonNullable<CallHangup.Payload["hangup_source"]>;

const OUTCOME_CAUSE: Record<Exclude<CallOutcome, "answer">, HangupCause> = {
  busy: "user_busy",
  "no-answer": "timeout",
  failed: "call_rejected",
};

/** How long the simulated Telnyx takes to say one character of a `speak` payload (about 15 a second). */
const SPEAK_MS_PER_CHARACTER = 60;

export class TelnyxCall {
  readonly callControlId: string;
  readonly callLegId: string;
  readonly callSessionId: string;
  readonly options: TelnyxCallOptions;
  readonly legs: MediaLegResult[] = [];
  /** Session id from the stream URL the platform gave (`…/media/{sessionId}/{token}`). */
  sessionId: string | undefined;
  /** The payload of every `speak` command, in order (what the callee, or its voicemail, heard). */
  readonly said: string[] = [];
  #state: "parked" | "ringing" | "answered" | "ended" = "parked";
  #clientState: string | undefined;
  #leg: MediaLeg | undefined;
  #recording = false;
  #startedAt = new Date();
  #webhooks: Promise<void> = Promise.resolve();
  #cancelTimer: () => void = () => {};
  readonly #ended: Promise<void>;
  #markEnded: () => void = () => {};

  constructor(options: TelnyxCallOptions) {
    this.options = options;
    this.callControlId = options.callControlId ?? telnyxCallControlId();
    this.callLegId = options.callLegId ?? uuid();
    this.callSessionId = options.callSessionId ?? uuid();
    this.#clientState = options.clientState;
    this.#ended = new Promise((resolve) => (this.#markEnded = resolve));
  }

  get to(): string {
    return this.options.to;
  }

  get isAlive(): boolean {
    return this.#state !== "ended";
  }

  /** Starts the call; the returned promise settles once it ended and every webhook was delivered. */
  async run(): Promise<void> {
    const { options } = this;
    this.#startedAt = new Date();
    this.#webhook("call.initiated", {
      direction: options.direction,
      state: options.direction === "incoming" ? "parked" : "bridging",
      start_time: this.#startedAt.toISOString(),
    });
    const cancelTimeLimit = options.clock.at(options.maxDurationMs ?? 120_000, () => this.#end("time_limit", "unknown"));
    if (options.direction === "incoming") {
      this.#afterMs(options.answerTimeoutMs ?? 20_000, () => this.#end("originator_cancel", "caller"));
    } else {
      this.#state = "ringing";
      this.#afterMs(options.answerDelayMs ?? 100, () => this.#settleDial());
    }
    await this.#ended;
    cancelTimeLimit();
    await this.#webhooks;
  }

  /**
   * A Call Control command for this call (already authenticated and de-duplicated by command_id). Runs after
   * the fake API answered it, as Telnyx sends the resulting webhooks after the 200.
   */
  command(action: string, body: Record<string, unknown>): void {
    const { timeline } = this.options;
    timeline.add("command", action);
    if (this.#state === "ended") return; // accepted just before the call ended
    if (typeof body.client_state === "string") this.#clientState = body.client_state;
    switch (action) {
      case "answer":
        if (this.#state !== "parked") return;
        this.#cancelTimer();
        this.#answer();
        if (typeof body.stream_url === "string") this.#startStream(body);
        return;
      case "streaming_start":
        if (typeof body.stream_url === "string") this.#startStream(body);
        else timeline.add("error", "streaming_start without stream_url");
        return;
      case "streaming_stop":
        this.#leg?.end();
        return;
      case "transfer":
        this.#leg?.end();
        this.#webhook("call.bridged", { to: typeof body.to === "string" ? body.to : this.options.to });
        return;
      case "record_start":
        this.#recording = true;
        return;
      case "hangup":
        this.#end("normal_clearing", this.options.direction === "incoming" ? "callee" : "caller");
        return;
      case "reject":
        this.#end("call_rejected", "callee");
        return;
      case "speak": {
        // Telnyx says the text, then reports it said (unless the call ended first); other timers keep running.
        this.#webhook("call.speak.started", {});
        this.said.push(String(body.payload ?? ""));
        const { clock } = this.options;
        const saidMs = String(body.payload ?? "").length * SPEAK_MS_PER_CHARACTER;
        clock.at(clock.now() + saidMs, () => {
          if (this.#state !== "ended") this.#webhook("call.speak.ended", { status: "completed" });
        });
        return;
      }
    }
  }

  #settleDial(): void {
    const outcome = this.options.outcome ?? "answer";
    if (outcome !== "answer") {
      this.#end(OUTCOME_CAUSE[outcome], "callee");
      return;
    }
    this.#answer();
    if (typeof this.options.dialStream?.stream_url === "string") this.#startStream(this.options.dialStream);
    this.#detectMachine();
  }

  /**
   * `call.machine.detection.ended` once detection has listened (`human` or `machine`; a fax is a machine here), then
   * for a machine in a greeting mode `call.machine.greeting.ended` (`beep_detected`) when its greeting ends.
   */
  #detectMachine(): void {
    const detection = this.options.machineDetection;
    if (!detection || detection.mode === "disabled") return;
    const { clock } = this.options;
    const machine = detection.answeredBy !== "human";
    clock.at(clock.now() + AMD_VERDICT_MS, () => {
      if (this.#state === "ended") return;
      this.#webhook("call.machine.detection.ended", { result: machine ? "machine" : "human" });
    });
    if (!machine || !GREETING_MODES.has(detection.mode)) return;
    clock.at(clock.now() + AMD_VERDICT_MS + GREETING_MS, () => {
      if (this.#state !== "ended") this.#webhook("call.machine.greeting.ended", { result: "beep_detected" });
    });
  }

  #answer(): void {
    this.#state = "answered";
    this.#webhook("call.answered", { state: "answered", start_time: this.#startedAt.toISOString() });
    const { hangUpAfterMs } = this.options;
    if (hangUpAfterMs !== undefined) this.#afterMs(hangUpAfterMs, () => this.#end("normal_clearing", this.#callerSide()));
  }

  #startStream(command: Record<string, unknown>): void {
    const { options } = this;
    const streamUrl = String(command.stream_url);
    this.#leg?.end();
    this.sessionId = new URL(streamUrl).pathname.split("/").filter(Boolean).at(-2);
    const codec = g711(command.stream_codec) ?? g711(command.stream_bidirectional_codec) ?? "PCMU";
    for (const name of ["stream_codec", "stream_bidirectional_codec"]) {
      const requested = command[name];
      if (requested !== undefined && g711(requested) === undefined) {
        options.timeline.add("error", `${name} ${JSON.stringify(requested)} is not simulated (PCMU/PCMA only)`);
      }
    }
    if (command.stream_bidirectional_mode !== undefined && command.stream_bidirectional_mode !== "rtp") {
      options.timeline.add(
        "error",
        `stream_bidirectional_mode ${JSON.stringify(command.stream_bidirectional_mode)}: only rtp is simulated`,
      );
    }
    const leg = startMediaLeg({
      // The token is in the path: Telnyx adds no auth header.
      url: rewriteOrigin(streamUrl, options.platform.baseUrl),
      dialect: telnyxMediaDialect({
        streamId: uuid(),
        callControlId: this.callControlId,
        callSessionId: this.callSessionId,
        from: options.from,
        to: options.to,
        clientState: this.#clientState,
        codec,
        playbackCodec: g711(command.stream_bidirectional_codec) ?? codec,
      }),
      clock: options.clock,
      script: options.script,
      timeline: options.timeline,
      maxDurationMs: options.maxDurationMs ?? 120_000,
      ...options.media,
      onConnected: () => this.#webhook("streaming.started", { stream_url: streamUrl }),
      onDtmf: (digit) => this.#webhook("call.dtmf.received", { digit }),
    });
    this.#leg = leg;
    void leg.done.then((result) => {
      this.legs.push(result);
      if (this.#leg === leg) this.#leg = undefined;
      if (result.endReason === "connect-failed") {
        this.#webhook("streaming.failed", { stream_url: streamUrl, failure_reason: "connection_failed" });
      } else {
        this.#webhook("streaming.stopped", { stream_url: streamUrl });
      }
      // The caller ran out of things to say, or the platform dropped the stream: the caller hangs up.
      if (result.endReason !== "ended-by-carrier") this.#end("normal_clearing", this.#callerSide());
    });
  }

  #end(cause: HangupCause, source: HangupSource): void {
    if (this.#state === "ended") return;
    const wasAnswered = this.#state === "answered";
    this.#state = "ended";
    this.#cancelTimer();
    this.options.timeline.add("hangup", `${source} hung up (${cause})`);
    const leg = this.#leg;
    leg?.end();
    // The stream's streaming.stopped goes out before call.hangup.
    void (leg ? leg.done : Promise.resolve()).then(() => {
      const endTime = new Date().toISOString();
      this.#webhook("call.hangup", {
        state: "hangup",
        hangup_cause: cause,
        hangup_source: source,
        start_time: this.#startedAt.toISOString(),
        end_time: endTime,
      });
      if (this.#recording && wasAnswered) {
        this.#webhook("call.recording.saved", {
          channels: "single",
          recording_started_at: this.#startedAt.toISOString(),
          recording_ended_at: endTime,
          recording_urls: { mp3: `https://recordings.telnyx.test/${this.callLegId}.mp3` },
        });
      }
      this.#markEnded();
    });
  }

  /** Which party the simulated person is: the caller on inbound calls, the callee on dialled ones. */
  #callerSide(): HangupSource {
    return this.options.direction === "incoming" ? "caller" : "callee";
  }

  #afterMs(ms: number, callback: () => void): void {
    this.#cancelTimer();
    const { clock } = this.options;
    this.#cancelTimer = clock.at(clock.now() + ms, callback);
  }

  /** Webhooks go out one at a time, in order; a failed delivery is recorded, never retried. */
  #webhook(eventType: string, payload: Record<string, unknown>): void {
    const { options } = this;
    const url = options.webhookUrl ?? `${options.platform.publicBaseUrl ?? options.platform.baseUrl}/telephony/telnyx/webhook`;
    const envelope = {
      data: {
        event_type: eventType,
        id: uuid(),
        occurred_at: new Date().toISOString(),
        payload: {
          call_control_id: this.callControlId,
          call_leg_id: this.callLegId,
          call_session_id: this.callSessionId,
          connection_id: options.connectionId ?? "simulated-connection",
          from: options.from,
          to: options.to,
          ...(this.#clientState === undefined ? {} : { client_state: this.#clientState }),
          ...payload,
        },
        record_type: "event",
      },
      meta: { attempt: 1, delivered_to: url },
    };
    const rawBody = JSON.stringify(envelope);
    this.#webhooks = this.#webhooks.then(async () => {
      try {
        const response = await fetch(rewriteOrigin(url, options.platform.baseUrl), {
          method: "POST",
          headers: { "Content-Type": "application/json", ...options.signer.headers(rawBody) },
          body: rawBody,
        });
        const text = await response.text();
        options.timeline.add("webhook", `${eventType} → HTTP ${response.status}`);
        if (!response.ok) options.timeline.add("error", `${eventType} webhook answered HTTP ${response.status}: ${text.slice(0, 200)}`);
      } catch (error) {
        options.timeline.add("error", `${eventType} webhook failed: ${String(error)}`);
      }
    });
  }
}

function g711(codec: unknown): G711Codec | undefined {
  return codec === "PCMU" || codec === "PCMA" ? codec : undefined;
}
