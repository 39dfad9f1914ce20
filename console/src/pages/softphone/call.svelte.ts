import type { ProviderName } from "../../../../workers/shared/provider-names.ts";
import { ApiError, api } from "../../lib/api.ts";
import { type Microphone, openMicrophone } from "../../lib/audio/microphone.ts";
import { Pcm16Player } from "../../lib/audio/player.ts";
import { type LiveEvent, LiveSocket, type LiveStatus } from "../../lib/live.ts";
import { notices } from "../../lib/notify.svelte.ts";
import { tabs } from "../../lib/tabs.ts";
import { providerLabel } from "./providers.ts";
import { callToRejoin, forgetCall, rememberCall } from "./resume.ts";
import { ScreenShare } from "./screen-share.ts";

export type CallPhase = "idle" | "starting" | "in-call" | "ending";

export interface TranscriptLine {
  id: number;
  role: "caller" | "agent" | "supervisor";
  text: string;
  interrupted: boolean;
}

interface CreatedSession {
  id: string;
  provider: ProviderName;
}

interface SessionDetail {
  id: string;
  status: "active" | "ended";
  channel: "web" | "phone";
  provider: ProviderName;
  transcript: Array<{ role: "caller" | "agent" | "system" | "supervisor"; text: string; interrupted: boolean }>;
}

/** At most this many transcript lines are kept on screen; the whole transcript stays in the session's history. */
const MAX_LINES = 500;
/** The level meter moves at most this often (one reading per 5 frames of 20 ms) and shows the loudest of them. */
const LEVEL_EVERY_FRAMES = 5;

/**
 * One softphone call: a web session (POST /api/v1/sessions) joined on `/live` as its caller, the microphone's PCM16
 * 16 kHz frames sent as binary frames, the agent's played (and dropped at once on `playback_clear`), the transcript,
 * the connection's quality, screen sharing when the provider can see, and a rejoin after a reload. One per tab and
 * kept at module level, so moving to another page of the console does not drop the call.
 */
export class SoftphoneCall {
  phase = $state<CallPhase>("idle");
  sessionId = $state<string | null>(null);
  provider = $state<ProviderName | null>(null);
  link = $state<LiveStatus>("closed");
  roundTripMs = $state<number | null>(null);
  level = $state(0);
  muted = $state(false);
  agentFrames = $state(0);
  interruptions = $state(0);
  /** Seconds of agent audio the last `playback_clear` dropped unplayed. */
  lastDroppedSeconds = $state(0);
  transcript = $state<TranscriptLine[]>([]);
  /** Whether the current provider can see a shared screen: null until `hello` says. */
  vision = $state<boolean | null>(null);
  /** The browser held audio back (a rejoin after a reload has no user gesture yet): a click must resume it. */
  audioSuspended = $state(false);
  /** Said once the call has rejoined after a reload. */
  rejoined = $state(false);
  sharing = $state(false);
  framesShared = $state(0);
  /** The last picture of the screen sent (base64 JPEG): the preview shows what the agent sees. */
  lastFrame = $state<string | null>(null);
  /** The last call's end, said on the idle screen. */
  lastOutcome = $state<string | null>(null);
  /** The session is recorded: what the caller is told before the agent speaks (shown, and said once). */
  consent = $state<string | null>(null);
  /** The consent message was said (its speech ended) on this page. */
  private consentSaid = false;

  private socket: LiveSocket | null = null;
  private microphone: Microphone | null = null;
  private player: Pcm16Player | null = null;
  private share: ScreenShare | null = null;
  private peak = 0;
  private frames = 0;
  private nextLine = 1;

  /** Places a call: the microphone first (a refusal starts nothing), then the session, then `/live`. */
  async start(options: { provider?: ProviderName; promptId?: string }): Promise<void> {
    if (this.phase !== "idle") return;
    this.phase = "starting";
    this.reset();
    try {
      await this.openAudio();
    } catch (error) {
      this.teardown();
      this.phase = "idle";
      notices.push("error", `The microphone is not available: ${messageOf(error)}`);
      return;
    }
    let session: CreatedSession;
    try {
      session = await api<CreatedSession>("POST", "/api/v1/sessions", options);
    } catch (error) {
      this.teardown();
      this.phase = "idle";
      notices.push("error", `The call could not start: ${messageOf(error)}`);
      return;
    }
    this.sessionId = session.id;
    this.provider = session.provider;
    rememberCall(session.id);
    this.join(session.id);
    this.phase = "in-call";
    tabs.post({ type: "session.changed", sessionId: session.id });
    notices.push("success", "Call started");
  }

  /** On load: a call this tab had in progress before a reload is joined again, if the platform still holds it. */
  async rejoinIfAny(): Promise<void> {
    const id = callToRejoin();
    if (!id || this.phase !== "idle") return;
    this.phase = "starting";
    let detail: SessionDetail;
    try {
      detail = await api<SessionDetail>("GET", `/api/v1/sessions/${encodeURIComponent(id)}`);
    } catch (error) {
      this.phase = "idle";
      if (error instanceof ApiError && error.status === 404) forgetCall();
      else notices.push("error", `Could not check your call in progress: ${messageOf(error)}`);
      return;
    }
    if (detail.status !== "active") {
      forgetCall();
      this.phase = "idle";
      this.lastOutcome = "Your previous call ended while the page was away.";
      return;
    }
    this.reset();
    this.sessionId = id;
    this.provider = detail.provider;
    // What was said before the reload, as far as the platform has written it (it may lag the call by a few seconds).
    for (const line of detail.transcript.slice(-MAX_LINES)) {
      if (line.role !== "system")
        this.transcript.push({ id: this.nextLine++, role: line.role, text: line.text, interrupted: line.interrupted });
    }
    // The socket first: the platform's grace period is running out.
    this.join(id);
    this.phase = "in-call";
    this.rejoined = true;
    notices.push("info", "Rejoined your call in progress");
    try {
      await this.openAudio();
    } catch (error) {
      notices.push("error", `The microphone is not available: ${messageOf(error)}`);
    }
  }

  /** Ends the session through the API (the agent's side hangs up too), then closes everything here. */
  async hangUp(): Promise<void> {
    const id = this.sessionId;
    if (!id || this.phase !== "in-call") return;
    this.phase = "ending";
    try {
      await api("POST", `/api/v1/sessions/${encodeURIComponent(id)}/end`);
      notices.push("success", "Call ended");
      this.finish("You hung up.");
    } catch (error) {
      // The socket is closed anyway: the platform ends a web session 30 s after its caller leaves.
      notices.push("error", `Hanging up through the API failed (${messageOf(error)}); the call ends within 30 seconds.`);
      this.finish("You hung up; the platform ends the call within 30 seconds.");
    }
  }

  toggleMute(): void {
    if (!this.microphone) return;
    this.muted = !this.muted;
    this.microphone.muted = this.muted;
    if (this.muted) this.level = 0;
    notices.push("info", this.muted ? "Microphone muted" : "Microphone on");
  }

  /** Starts audio the browser held back after a reload (from the person's click). */
  async resumeAudio(): Promise<void> {
    await Promise.all([this.player?.resume(), this.microphone?.resume()]);
    this.audioSuspended = Boolean(this.player?.suspended || this.microphone?.suspended);
    if (!this.audioSuspended) notices.push("success", "Audio on");
  }

  /** Asks the browser for the screen and sends about one frame a second while the provider can see. */
  async startSharing(): Promise<void> {
    if (this.share || !this.vision || this.phase !== "in-call") return;
    try {
      this.share = await ScreenShare.start(
        (data) => {
          if (!this.socket?.send({ type: "screen", mimeType: "image/jpeg", data })) return;
          this.framesShared++;
          this.lastFrame = data;
        },
        () => this.stopSharing("Screen sharing stopped"),
      );
      this.sharing = true;
      notices.push("success", "Sharing your screen");
    } catch (error) {
      notices.push("error", `Screen sharing did not start: ${messageOf(error)}`);
    }
  }

  stopSharing(said = "Screen sharing stopped"): void {
    if (!this.share) return;
    this.share.stop();
    this.share = null;
    this.sharing = false;
    this.lastFrame = null;
    notices.push("info", said);
  }

  private async openAudio(): Promise<void> {
    this.player ??= new Pcm16Player();
    this.microphone ??= await openMicrophone(
      (frame) => this.socket?.sendAudio(frame),
      (level) => this.meter(level),
    );
    this.microphone.muted = this.muted;
    this.audioSuspended = this.player.suspended || this.microphone.suspended;
  }

  private join(sessionId: string): void {
    this.socket = new LiveSocket({
      sessionId,
      role: "caller",
      onEvent: (event) => this.onEvent(event),
      onAudio: (frame) => {
        this.player?.play(frame);
        this.agentFrames++;
      },
      onStatus: (status) => {
        this.link = status;
        // Closed for good by the platform (credential revoked, replaced by another tab): the call is over here.
        if (status === "closed" && this.phase === "in-call") this.finish("The call's connection was closed.");
      },
      onRoundTrip: (ms) => {
        this.roundTripMs = ms;
      },
    });
  }

  /**
   * A recorded session's consent message, shown and said by the browser's own speech (the platform has no voice of
   * its own for a web caller) the first time this call hears it. The platform holds the caller's microphone back
   * from the agent and the recording until `consent_heard` (or until the time to say it has passed: a browser with
   * no speech synthesis shows it for reading). Greeted again after a reconnect, the page says it was said already.
   */
  private tellConsent(consent: string | null): void {
    if (consent === null) return;
    if (consent === this.consent) {
      if (this.consentSaid) this.socket?.send({ type: "consent_heard" });
      return;
    }
    this.consent = consent;
    this.consentSaid = false;
    if (!("speechSynthesis" in window)) return;
    const utterance = new SpeechSynthesisUtterance(consent);
    // A voice that fails still showed the message: the caller is not held past it.
    utterance.onend = utterance.onerror = () => {
      this.consentSaid = true;
      this.socket?.send({ type: "consent_heard" });
    };
    speechSynthesis.speak(utterance);
  }

  private onEvent(event: LiveEvent): void {
    switch (event.type) {
      case "hello":
        this.provider = event.provider;
        this.tellConsent(event.consent);
        return this.canSee(event.capabilities.vision);
      // The session moved to another provider (a switch, a failover): what it can take now.
      case "capabilities":
        this.provider = event.provider;
        return this.canSee(event.capabilities.vision);
      case "transcript":
        this.transcript = [
          ...this.transcript.slice(-(MAX_LINES - 1)),
          { id: this.nextLine++, role: event.role, text: event.text, interrupted: event.interrupted },
        ];
        return;
      case "playback_clear":
        this.lastDroppedSeconds = this.player?.queuedSeconds() ?? 0;
        this.player?.clear();
        this.interruptions++;
        return;
      case "session_ended":
        // Our own hang-up: its answer finishes the call.
        if (this.phase === "ending") return;
        this.finish(`The call ended (${event.reason.replaceAll("_", " ")}).`);
        notices.push("info", "The call ended");
        return;
      case "error":
        notices.push("error", event.message);
        return;
      default:
        return;
    }
  }

  /** A provider that cannot see ends a share at once: its frames would go nowhere. */
  private canSee(vision: boolean): void {
    this.vision = vision;
    if (!vision && this.sharing)
      this.stopSharing(`Screen sharing stopped: the current provider (${providerLabel(this.provider)}) cannot see images`);
  }

  private meter(level: number): void {
    this.peak = Math.max(this.peak, level);
    if (++this.frames < LEVEL_EVERY_FRAMES) return;
    this.level = this.muted ? 0 : this.peak;
    this.peak = 0;
    this.frames = 0;
  }

  private finish(outcome: string): void {
    const id = this.sessionId;
    this.phase = "idle";
    this.teardown();
    forgetCall();
    this.lastOutcome = outcome;
    if (id) tabs.post({ type: "session.changed", sessionId: id });
  }

  private teardown(): void {
    this.share?.stop();
    this.share = null;
    this.sharing = false;
    this.lastFrame = null;
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    this.microphone?.stop();
    this.microphone = null;
    this.player?.close();
    this.player = null;
    this.level = 0;
    this.audioSuspended = false;
    this.roundTripMs = null;
  }

  private reset(): void {
    this.sessionId = null;
    this.provider = null;
    this.muted = false;
    this.agentFrames = 0;
    this.interruptions = 0;
    this.lastDroppedSeconds = 0;
    this.transcript = [];
    this.vision = null;
    this.rejoined = false;
    this.framesShared = 0;
    this.lastOutcome = null;
    this.consent = null;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export const softphone = new SoftphoneCall();
