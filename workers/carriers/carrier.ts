import type { Hono } from "hono";
import type { Carrier as CarrierName, MachineDetectionMode } from "../shared/db/schema.ts";
import type { AudioEncoding, CarrierMediaProtocol } from "./media-frames.ts";
import type { CarrierEnv } from "./webhook-guard.ts";

export type { CallSignal, CarrierEvent } from "./call-events.ts";
export type { AudioEncoding, CarrierMediaProtocol, MediaFrame } from "./media-frames.ts";
export type { CarrierName };

/** The codec a number is configured for: what the carrier is asked to stream and to play back. */
export type Codec = "PCMU" | "PCMA";

/** What a carrier's commands need to know of the call they act on. */
export interface CarrierCall {
  sessionId: string;
  carrierCallId: string | null;
  to: string;
  codec: Codec;
  answered: boolean;
  /** Changes with every recorded event, so a command's idempotency key differs from the last one's. */
  commandSeq: number;
  /** Answering-machine detection asked of an outbound call: its result comes later, as a `machine_detection` signal. */
  machineDetection: MachineDetectionMode | null;
  /** An outbound call whose callee hears the consent message before the stream starts: dialled without it. */
  streamAfterConsent: boolean;
}

/** What a caller turned away at the tenant's concurrency limit hears before the call ends. */
export const BUSY_MESSAGE = "Sorry, all of our lines are busy right now. Please call again later. Goodbye.";

/** Turning away a call goes step by step, each on the carrier's word that the one before is done. */
export type TurnAwayStep = "arrived" | "answered" | "spoken";

/**
 * Answering a recorded call whose caller must hear the consent message before the agent, step by step: answer without
 * media, say the message, then start the stream once it has been said (or could not be).
 */
export type ConsentStep = { step: "answer" } | { step: "say"; message: string } | { step: "stream" };

export type CarrierCallState = { state: "live" } | { state: "ended"; failed: string | null } | { state: "unknown" };

/** Commands the call's object sends its carrier for one call; each is idempotent at the carrier. */
export interface CarrierCommands {
  /** Answers an inbound call with media streaming (carriers that answer by command, `answersByCommand`). */
  answer(): Promise<void>;
  /** Places the call from `from`; the carrier's webhooks carry our session id back. */
  place(from: string): Promise<{ carrierCallId: string }>;
  /** Ends the call; a call the carrier already ended counts as success. */
  hangup(): Promise<void>;
  /** Stops the media stream while the caller waits. */
  hold(): Promise<void>;
  /** Reconnects the media stream to the call's object. */
  resume(): Promise<void>;
  /** Transfers the caller to `to`; `completed` when the carrier will not confirm it later (no bridged event). */
  transfer(to: string): Promise<{ completed: boolean }>;
  /** What the carrier says about the call now. */
  currentState(): Promise<CarrierCallState>;
  /**
   * One step of turning away an inbound call past its tenant's concurrency limit: the caller hears `BUSY_MESSAGE`,
   * then the call ends. A carrier that answers calls by the webhook's response does it all in that response (Twilio:
   * `<Say>` then `<Hangup/>`) and sends nothing; one that answers by command answers without media when the call has
   * `arrived`, speaks once `answered`, and hangs up once the message is `spoken`.
   */
  turnAway(step: TurnAwayStep): Promise<void>;
  /**
   * Plays `message` to the machine that answered (after its beep). `endsCall` when the carrier hangs up by itself
   * once it is said (Twilio: `<Say>` then `<Hangup/>`); otherwise the carrier reports it said (`spoken`) and the
   * call's object hangs up.
   */
  leaveVoicemail(message: string): Promise<{ endsCall: boolean }>;
  /**
   * One step of answering by command a call whose caller hears the consent message first (the stream, and with it the
   * agent and the recording, starts only at `stream`). A carrier that answers by the webhook's response says the
   * message in that response (Twilio: `<Say>` before `<Connect><Stream>`) and sends nothing.
   */
  consent(step: ConsentStep): Promise<void>;
}

/**
 * Everything the platform knows about one carrier, in its own folder (`workers/carriers/<name>/`): the Worker mounts
 * its routes, and the call's object speaks to it only through this interface and the internal vocabulary of
 * `CarrierEvent`s and `MediaFrame`s. A carrier is added with one folder and one line in `registry.ts`.
 */
export interface Carrier {
  readonly name: CarrierName;
  /** Its webhook and media-upgrade routes (under `/telephony/<name>/`), each behind the carrier's webhook guard. */
  readonly routes: Hono<CarrierEnv>;
  /** A translator for one media stream (it may remember the stream's id between messages). */
  mediaStream(): CarrierMediaProtocol;
  /** Media frames may arrive out of order: a small window waits for gaps to fill. */
  readonly reordersMedia: boolean;
  /**
   * The media stream proves itself in its first message (`start` carries the credential), because the upgrade
   * request cannot carry it; otherwise the Worker verified the credential before the upgrade reached the object.
   */
  readonly authenticatesInStream: boolean;
  /** Inbound calls are answered by a command after the first webhook rather than by the webhook's response. */
  readonly answersByCommand: boolean;
  /**
   * The encoding the platform asks the carrier to play back for a number's codec, so exactly what is sent to the
   * caller (and what providers are configured with). Caller audio is decoded by what the stream's `start` says,
   * which need not agree (a Telnyx call whose inbound media is A-law on a PCMU number).
   */
  mediaEncoding(codec: Codec): AudioEncoding;
  commands(env: Env, call: CarrierCall): CarrierCommands;
  /**
   * Whether `e164` is on this deployment's account at the carrier, asked of its API. Throws `CarrierApiError` when
   * the carrier cannot say (unreachable, 5xx, refused credentials): that is never an answer.
   */
  holdsNumber(env: Env, e164: string): Promise<boolean>;
  /**
   * Sends a text message from `from` (a number of the tenant's on this carrier), answering the carrier's message id.
   * Throws `CarrierApiError` when the carrier refused or could not be reached (`retryable` says whether to try again).
   */
  sendSms(env: Env, message: SmsMessage): Promise<{ messageId: string }>;
}

export interface SmsMessage {
  from: string;
  to: string;
  body: string;
}
