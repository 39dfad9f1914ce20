import type { CallStatus } from "twilio/lib/rest/api/v2010/account/call.js";
import type { CallerScript } from "./caller-script.ts";
import { type MediaClock, sleepUntil } from "./clock.ts";
import type { Answerer, CallOutcome, PlatformTarget } from "./control.ts";
import { encodeForm, rewriteOrigin } from "./http.ts";
import { twilioSid, uuid } from "./ids.ts";
import { type MediaLeg, type MediaLegResult, startMediaLeg } from "./media-leg.ts";
import { type FormParams, twilioSignature } from "./signing.ts";
import type { Timeline } from "./timeline.ts";
import { twilioMediaDialect } from "./twilio-media.ts";
import { type StatusCallbackDelivery, type StatusCallbackTarget, TwilioStatusCallbacks } from "./twilio-status-callbacks.ts";
import { parseTwiml, type TwimlDocument } from "./twiml.ts";

/**
 * One Twilio call as Twilio runs it against the platform: status callbacks, the voice webhook, the TwiML it
 * returns, and a Media Stream per `<Connect><Stream>`. Used for simulated inbound calls and for outbound calls
 * the fake REST API drives. Redirects (REST `Url`/`Twiml`) end the current stream and run the new TwiML.
 */
export interface TwilioCallOptions {
  platform: PlatformTarget;
  accountSid: string;
  authToken: string;
  callSid?: string;
  from: string;
  to: string;
  direction: "inbound" | "outbound-api";
  /** Public URL of the voice webhook; default `${publicBaseUrl}/telephony/twilio/voice`. */
  voiceUrl?: string;
  /** Inline TwiML instead of a voice webhook (REST `Twiml=`). */
  twiml?: string;
  statusCallback?: StatusCallbackTarget;
  statusCallbackDelivery?: StatusCallbackDelivery;
  outcome?: CallOutcome;
  answerDelayMs?: number;
  /** The caller hangs up this long after answering. */
  hangUpAfterMs?: number;
  clock: MediaClock;
  timeline: Timeline;
  script: CallerScript;
  /** No call outlives this much media time. Default 120 s. */
  maxDurationMs?: number;
  /** Asynchronous answering-machine detection (REST `MachineDetection`, `AsyncAmd=true`): its verdict is posted, signed. */
  machineDetection?: { mode: "Enable" | "DetectMessageEnd"; callbackUrl: string; answeredBy: Answerer };
}

/** How long detection listens before its verdict, and how long a machine's greeting runs to its beep. */
const AMD_VERDICT_MS = 800;
const GREETING_MS = 2_000;

type TwimlSource = { url: string } | { twiml: string };

const OUTCOME_STATUS: Record<Exclude<CallOutcome, "answer">, CallStatus> = {
  busy: "busy",
  "no-answer": "no-answer",
  failed: "failed",
};

export class TwilioCall {
  readonly callSid: string;
  readonly options: TwilioCallOptions;
  readonly legs: MediaLegResult[] = [];
  /** Session id, the last path segment of the stream URL the platform returned. */
  sessionId: string | undefined;
  /** The text of every `<Say>` the call ran, in order (what the callee, or its voicemail, heard). */
  readonly said: string[] = [];
  #status: CallStatus = "queued";
  #answeredAtMs: number | undefined;
  #currentLeg: MediaLeg | undefined;
  #nextTwiml: TwimlSource | undefined;
  #wakeIdle: () => void = () => {};
  #endStatus: CallStatus | undefined;
  readonly #callbacks: TwilioStatusCallbacks;
  readonly #publicBase: string;

  constructor(options: TwilioCallOptions) {
    this.options = options;
    this.callSid = options.callSid ?? twilioSid("CA");
    this.#publicBase = options.platform.publicBaseUrl ?? options.platform.baseUrl;
    this.#callbacks = new TwilioStatusCallbacks({
      target: options.statusCallback,
      ...(options.statusCallbackDelivery ? { delivery: options.statusCallbackDelivery } : {}),
      reachableBase: options.platform.baseUrl,
      authToken: options.authToken,
      timeline: options.timeline,
    });
  }

  get status(): CallStatus {
    return this.#status;
  }

  /** False once the call ended or is ending (a hangup was asked for): REST updates then answer 404. */
  get isLive(): boolean {
    return this.#endStatus === undefined && !isFinal(this.#status);
  }

  /** Runs the call to its end. Never rejects: failures land in the timeline. */
  async run(): Promise<void> {
    const { options } = this;
    this.#callbacks.notify("initiated", this.#callParams("initiated"));
    this.#status = "ringing";
    this.#callbacks.notify("ringing", this.#callParams("ringing"));
    await sleepUntil(options.clock, options.clock.now() + (options.answerDelayMs ?? 0));
    const outcome = options.outcome ?? "answer";
    if (outcome !== "answer") {
      this.#finish(OUTCOME_STATUS[outcome]);
    } else if (this.#endStatus === undefined) {
      let source: TwimlSource = options.twiml !== undefined ? { twiml: options.twiml } : { url: this.#voiceUrl() };
      const cancelHangUp =
        options.hangUpAfterMs === undefined
          ? () => {}
          : options.clock.at(options.clock.now() + options.hangUpAfterMs, () => this.#callerHangsUp());
      for (let first = true; this.#endStatus === undefined; first = false) {
        const document = await this.#fetchTwiml(source, first);
        if (!document || this.#endStatus !== undefined) break; // unusable TwiML, or hung up meanwhile
        if (first) this.#answer();
        await this.#execute(document);
        if (this.#nextTwiml === undefined) break;
        source = this.#nextTwiml;
        this.#nextTwiml = undefined;
      }
      cancelHangUp();
      this.#finish(this.#endStatus ?? "completed");
    } else {
      this.#finish(this.#endStatus);
    }
    await this.#callbacks.settle();
  }

  /** REST `Status=completed|canceled`; returns the status the call ends with. */
  hangUp(status: "completed" | "canceled"): CallStatus {
    if (!this.isLive) return this.#endStatus ?? this.#status;
    const endStatus = this.#status === "in-progress" ? "completed" : status;
    this.#endStatus = endStatus;
    this.options.timeline.add("hangup", `platform ended the call (${endStatus})`);
    this.#currentLeg?.end();
    this.#wakeIdle();
    return endStatus;
  }

  #callerHangsUp(): void {
    if (!this.isLive) return;
    this.#endStatus = "completed";
    this.options.timeline.add("hangup", "caller hung up");
    this.#currentLeg?.end();
    this.#wakeIdle();
  }

  /** REST `Url=` / `Twiml=`: the current TwiML stops (its stream ends) and the new one runs. */
  redirect(source: TwimlSource): void {
    if (!this.isLive) return;
    this.options.timeline.add("command", "url" in source ? `redirect to ${source.url}` : "redirect to inline TwiML");
    this.#nextTwiml = source;
    this.#currentLeg?.end();
    this.#wakeIdle();
  }

  #voiceUrl(): string {
    return this.options.voiceUrl ?? `${this.#publicBase}/telephony/twilio/voice`;
  }

  #callParams(callStatus: CallStatus | "initiated"): FormParams {
    const { options } = this;
    return {
      CallSid: this.callSid,
      AccountSid: options.accountSid,
      From: options.from,
      To: options.to,
      Caller: options.from,
      Called: options.to,
      CallStatus: callStatus,
      Direction: options.direction,
      ApiVersion: "2010-04-01",
    };
  }

  async #fetchTwiml(source: TwimlSource, first: boolean): Promise<TwimlDocument | undefined> {
    const { timeline } = this.options;
    if ("twiml" in source) return this.#parse(source.twiml);
    // Inbound calls fetch TwiML while still ringing; outbound ones once answered.
    const callStatus = first && this.options.direction === "inbound" ? "ringing" : "in-progress";
    const params = this.#callParams(callStatus);
    try {
      const response = await fetch(rewriteOrigin(source.url, this.options.platform.baseUrl), {
        method: "POST",
        headers: {
          "Content-Type": "application/x-www-form-urlencoded",
          "X-Twilio-Signature": twilioSignature(this.options.authToken, source.url, params),
          "I-Twilio-Idempotency-Token": uuid(),
        },
        body: encodeForm(params),
      });
      const text = await response.text();
      timeline.add("webhook", `POST ${source.url} (CallStatus=${callStatus}) → HTTP ${response.status}`);
      if (!response.ok) {
        timeline.add("error", `voice webhook answered HTTP ${response.status}: ${text.slice(0, 200)}`);
        return undefined;
      }
      return this.#parse(text);
    } catch (error) {
      timeline.add("error", `voice webhook failed: ${String(error)}`);
      return undefined;
    }
  }

  #parse(xml: string): TwimlDocument | undefined {
    try {
      const document = parseTwiml(xml);
      for (const verb of document.verbs) if (verb.name === "Say") this.said.push(verb.text.trim());
      this.options.timeline.add(
        "twiml",
        document.verbs.map((verb) => verb.name).join(", ") + (document.connectStream ? ` → ${document.connectStream.url}` : ""),
      );
      return document;
    } catch (error) {
      this.options.timeline.add("error", `TwiML rejected: ${String(error)} in ${xml.slice(0, 200)}`);
      return undefined;
    }
  }

  #answer(): void {
    this.#status = "in-progress";
    this.#answeredAtMs = this.options.clock.now();
    this.#callbacks.notify("answered", this.#callParams("in-progress"));
    this.#detectMachine();
  }

  /**
   * Twilio's verdict once it has listened: `human`, `fax`, or for a machine `machine_start` (Enable) or, after the
   * greeting's beep, `machine_end_beep` (DetectMessageEnd). Posted like a status callback: a form, signed.
   */
  #detectMachine(): void {
    const detection = this.options.machineDetection;
    if (!detection) return;
    const { clock, timeline } = this.options;
    const machine = detection.answeredBy === "machine";
    const atBeep = machine && detection.mode === "DetectMessageEnd";
    const answeredBy = machine ? (atBeep ? "machine_end_beep" : "machine_start") : detection.answeredBy;
    const afterMs = AMD_VERDICT_MS + (atBeep ? GREETING_MS : 0);
    clock.at(clock.now() + afterMs, () => {
      if (!this.isLive) return;
      const params: FormParams = {
        CallSid: this.callSid,
        AccountSid: this.options.accountSid,
        AnsweredBy: answeredBy,
        MachineDetectionDuration: String(afterMs),
      };
      void fetch(rewriteOrigin(detection.callbackUrl, this.options.platform.baseUrl), {
        method: "POST",
        headers: {
          "Content-Type": "application/x-www-form-urlencoded",
          "X-Twilio-Signature": twilioSignature(this.options.authToken, detection.callbackUrl, params),
        },
        body: encodeForm(params),
      })
        .then((response) => timeline.add("webhook", `POST AsyncAmdStatusCallback (AnsweredBy=${answeredBy}) → HTTP ${response.status}`))
        .catch((error: unknown) => timeline.add("error", `AsyncAmdStatusCallback failed: ${String(error)}`));
    });
  }

  /** Runs one TwiML document until it ends, the call is redirected, or hung up. */
  async #execute(document: TwimlDocument): Promise<void> {
    const { options } = this;
    const maxDurationMs = options.maxDurationMs ?? 120_000;
    const stream = document.connectStream;
    if (stream) {
      this.sessionId = new URL(stream.url).pathname.split("/").filter(Boolean).pop();
      const leg = startMediaLeg({
        url: rewriteOrigin(stream.url, options.platform.baseUrl),
        // The upgrade is signed over the stream URL exactly as the TwiML gave it, with no params.
        headers: { "X-Twilio-Signature": twilioSignature(options.authToken, stream.url, {}) },
        dialect: twilioMediaDialect({
          accountSid: options.accountSid,
          callSid: this.callSid,
          streamSid: twilioSid("MZ"),
          customParameters: stream.parameters,
        }),
        clock: options.clock,
        script: options.script,
        timeline: options.timeline,
        maxDurationMs,
      });
      this.#currentLeg = leg;
      const result = await leg.done;
      this.#currentLeg = undefined;
      this.legs.push(result);
      // Without a redirect, the end of <Connect> ends the TwiML and with it the call.
      if (result.endReason === "script-done") options.timeline.add("hangup", "caller hung up");
      return;
    }
    const holdMs = holdDurationMs(document);
    if (holdMs === 0) return; // TwiML ran out: Twilio hangs up
    await new Promise<void>((resolve) => {
      const cancel = options.clock.at(Math.min(maxDurationMs, options.clock.now() + holdMs), resolve);
      this.#wakeIdle = () => {
        cancel();
        resolve();
      };
    });
  }

  #finish(status: CallStatus): void {
    if (isFinal(this.#status)) return;
    this.#status = status;
    const params = this.#callParams(status);
    if (this.#answeredAtMs !== undefined) {
      params.CallDuration = String(Math.round((this.options.clock.now() - this.#answeredAtMs) / 1000));
    }
    this.#callbacks.notify("completed", params);
  }
}

function isFinal(status: CallStatus): boolean {
  return status === "completed" || status === "busy" || status === "no-answer" || status === "failed" || status === "canceled";
}

/**
 * How long TwiML without a stream keeps the call up before it runs out: forever for a bridge, a queue or audio
 * looped forever (until redirected or hung up), else the sum of its <Pause>s (speech takes no time here).
 */
function holdDurationMs(document: TwimlDocument): number {
  const forever = document.verbs.some(
    (verb) =>
      verb.name === "Dial" || verb.name === "Enqueue" || ((verb.name === "Play" || verb.name === "Say") && verb.attributes.loop === "0"),
  );
  if (forever) return Number.POSITIVE_INFINITY;
  const pauses = document.verbs.filter((verb) => verb.name === "Pause");
  return pauses.reduce((total, pause) => total + 1000 * Number(pause.attributes.length ?? "1"), 0);
}
