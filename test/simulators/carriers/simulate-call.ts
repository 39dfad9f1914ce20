import { samplesToMs } from "./audio.ts";
import { CallerScript, type CallerScriptOptions } from "./caller-script.ts";
import { realTimeClock } from "./clock.ts";
import type { PlatformTarget } from "./control.ts";
import type { FakeTelnyxApi } from "./fake-telnyx-api.ts";
import type { FakeTwilioApi } from "./fake-twilio-api.ts";
import type { MediaLegResult } from "./media-leg.ts";
import { type TelnyxSigner, telnyxSigner } from "./signing.ts";
import { TelnyxCall } from "./telnyx-call.ts";
import { Timeline, type TimelineEntry } from "./timeline.ts";
import { TwilioCall } from "./twilio-call.ts";
import type { StatusCallbackDelivery, TwilioStatusEvent } from "./twilio-status-callbacks.ts";

/**
 * Places one simulated inbound call against a running platform and reports what happened: the library behind
 * `npm run simulate`, for end-to-end tests too.
 */
export interface SimulateCallOptions extends Omit<CallerScriptOptions, "utterances"> {
  carrier: "twilio" | "telnyx";
  /** Where this process reaches the platform, e.g. http://127.0.0.1:8787. */
  baseUrl: string;
  /** The platform's PUBLIC_BASE_URL (signatures and URLs use it). Default baseUrl. */
  publicBaseUrl?: string;
  from?: string;
  to?: string;
  /** What the caller says, 8 kHz mono PCM16 (audio.ts readWav), one entry per turn. */
  utterances: Int16Array[];
  /** Media time runs this many times faster than real time. Default 1. */
  speed?: number;
  /** The caller hangs up at this media time at the latest. Default 120 s. */
  maxDurationMs?: number;
  twilio?: {
    accountSid: string;
    authToken: string;
    /** Status callbacks the number is configured for; Twilio sends only `completed` for inbound calls. */
    statusEvents?: readonly TwilioStatusEvent[];
    statusCallbackDelivery?: StatusCallbackDelivery;
    /** The fake REST API the platform's TWILIO_API_BASE points at, so its hangups/redirects reach this call. */
    api?: FakeTwilioApi;
  };
  telnyx?: {
    /** The fake Call Control API the platform's TELNYX_API_BASE points at: answer and streaming go through it. */
    api: FakeTelnyxApi;
    signer?: TelnyxSigner;
    connectionId?: string;
    media?: { reorderWindow?: number; duplicateEvery?: number; seed?: number };
  };
}

export interface Turn {
  utterance: number;
  /** End of the caller's speech, media ms since the call started. */
  speechEndMs: number;
  /** First agent audio frame that arrived after it, if any. */
  firstAgentAudioMs?: number;
  latencyMs?: number;
}

export interface CallReport {
  carrier: "twilio" | "telnyx";
  callId: string;
  sessionId?: string;
  /** No errors and a media stream was established. */
  ok: boolean;
  /** The agent sent audio at least once. */
  agentSpoke: boolean;
  errors: string[];
  /** Final carrier status: Twilio CallStatus, or `ended` for Telnyx. */
  finalStatus: string;
  timeline: TimelineEntry[];
  turns: Turn[];
  /** What the caller heard (8 kHz PCM16), aligned with the call's media clock. */
  receivedAudio: Int16Array;
  stats: {
    mediaFramesSent: number;
    mediaMessagesReceived: number;
    marksReceived: number;
    marksPlayed: number;
    clears: number;
    /** Agent audio the caller heard, silence between bursts excluded. */
    agentAudioMs: number;
  };
}

export const DEFAULT_CALLER = "+15550001111";
export const DEFAULT_CALLED = "+15550002222";

export async function simulateCall(options: SimulateCallOptions): Promise<CallReport> {
  const clock = realTimeClock(options.speed ?? 1);
  const timeline = new Timeline(clock);
  const script = new CallerScript({ ...options }, (event) => {
    if (event.kind === "dtmf") return; // the media leg records DTMF when it sends it
    timeline.add(event.kind, `utterance ${event.index + 1}`, event.atMs);
  });
  const platform: PlatformTarget = {
    baseUrl: options.baseUrl,
    ...(options.publicBaseUrl ? { publicBaseUrl: options.publicBaseUrl } : {}),
  };
  const from = options.from ?? DEFAULT_CALLER;
  const to = options.to ?? DEFAULT_CALLED;
  const maxDurationMs = options.maxDurationMs ?? 120_000;

  let call: TwilioCall | TelnyxCall;
  if (options.carrier === "twilio") {
    const twilio = options.twilio;
    if (!twilio) throw new Error("simulateCall: Twilio needs twilio.accountSid and twilio.authToken");
    const publicBase = options.publicBaseUrl ?? options.baseUrl;
    call = new TwilioCall({
      platform,
      accountSid: twilio.accountSid,
      authToken: twilio.authToken,
      from,
      to,
      direction: "inbound",
      statusCallback: { url: `${publicBase}/telephony/twilio/status`, events: twilio.statusEvents ?? ["completed"] },
      ...(twilio.statusCallbackDelivery ? { statusCallbackDelivery: twilio.statusCallbackDelivery } : {}),
      clock,
      timeline,
      script,
      maxDurationMs,
    });
    twilio.api?.adopt(call);
  } else {
    const telnyx = options.telnyx;
    if (!telnyx) throw new Error("simulateCall: Telnyx needs telnyx.api (the fake Call Control API)");
    call = new TelnyxCall({
      platform,
      signer: telnyx.signer ?? telnyxSigner(),
      ...(telnyx.connectionId ? { connectionId: telnyx.connectionId } : {}),
      from,
      to,
      direction: "incoming",
      clock,
      timeline,
      script,
      maxDurationMs,
      ...(telnyx.media ? { media: telnyx.media } : {}),
    });
    telnyx.api.adopt(call);
  }
  await call.run();
  return buildReport(options.carrier, call, script, timeline);
}

function buildReport(carrier: "twilio" | "telnyx", call: TwilioCall | TelnyxCall, script: CallerScript, timeline: Timeline): CallReport {
  const legs: MediaLegResult[] = call.legs;
  const turns = script.utterances.map((utterance): Turn => {
    const arrivals = legs
      .map((leg) => leg.playback.firstArrivalAtOrAfter(utterance.speechEndMs))
      .filter((arrival): arrival is number => arrival !== undefined);
    const firstAgentAudioMs = arrivals.length > 0 ? Math.min(...arrivals) : undefined;
    return {
      utterance: utterance.index + 1,
      speechEndMs: utterance.speechEndMs,
      ...(firstAgentAudioMs === undefined ? {} : { firstAgentAudioMs, latencyMs: firstAgentAudioMs - utterance.speechEndMs }),
    };
  });
  const sum = (pick: (leg: MediaLegResult) => number) => legs.reduce((total, leg) => total + pick(leg), 0);
  const errors = timeline.errors();
  const connected = legs.some((leg) => leg.endReason !== "connect-failed");
  return {
    carrier,
    callId: call instanceof TwilioCall ? call.callSid : call.callControlId,
    ...(call.sessionId ? { sessionId: call.sessionId } : {}),
    ok: errors.length === 0 && connected,
    agentSpoke: legs.some((leg) => leg.mediaMessagesReceived > 0),
    errors,
    finalStatus: call instanceof TwilioCall ? call.status : call.isAlive ? "alive" : "ended",
    timeline: timeline.entries(),
    turns,
    receivedAudio: overlay(legs.map((leg) => leg.playback.recording())),
    stats: {
      mediaFramesSent: sum((leg) => leg.mediaFramesSent),
      mediaMessagesReceived: sum((leg) => leg.mediaMessagesReceived),
      marksReceived: sum((leg) => leg.marksReceived.length),
      marksPlayed: sum((leg) => leg.marksPlayed.length),
      clears: sum((leg) => leg.clears),
      agentAudioMs: samplesToMs(sum((leg) => leg.playback.playedSampleCount())),
    },
  };
}

/** Recordings of successive streams share the call's clock, so they add up without overlapping. */
function overlay(recordings: Int16Array[]): Int16Array {
  const out = new Int16Array(recordings.reduce((max, recording) => Math.max(max, recording.length), 0));
  for (const recording of recordings) {
    for (let i = 0; i < recording.length; i++) out[i] = Math.max(-32768, Math.min(32767, out[i]! + recording[i]!));
  }
  return out;
}
