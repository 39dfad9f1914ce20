import { api } from "../../lib/api.ts";
import { type LiveEvent, LiveSocket, type LiveStatus } from "../../lib/live.ts";
import type { CallStatus, Escalation, ProviderName, Sentiment, SessionDetail, SwitchEntry, TranscriptLine } from "./api-types.ts";
import { ENDED_CALL_STATUSES } from "./api-types.ts";

/**
 * How often the session's record is read again (its call, turns and escalations). The stored transcript lags a live
 * call by up to 10 s; what `/live` streams fills the gap.
 */
const DETAIL_POLL_MS = 5_000;
/** A live view keeps the latest events; an hour-long call must not grow the page without bound. */
const MAX_FEED = 200;
const MAX_LIVE_LINES = 2_000;

export interface LiveLine {
  key: string;
  role: TranscriptLine["role"];
  text: string;
  provider: ProviderName;
  interrupted: boolean;
  at: number;
}

export interface FeedItem {
  id: number;
  at: number;
  kind:
    | "barge_in"
    | "tool_call"
    | "escalation"
    | "whisper"
    | "takeover"
    | "release"
    | "switch"
    | "dtmf"
    | "call_state"
    | "provider"
    | "error";
  text: string;
}

const keyOf = (role: string, at: number, text: string) => `${role}|${at}|${text}`;

/**
 * One live session as the page sees it: the record from the API (read again every few seconds for the turns and
 * the durable transcript), merged with what `/live` streams as a supervisor. Lines are matched by role, instant and
 * text, so a line seen live and later read from the API shows once.
 */
export class LiveSessionState {
  detail = $state<SessionDetail | null>(null);
  loadError = $state<string | null>(null);
  switches = $state<SwitchEntry[]>([]);
  switchesError = $state<string | null>(null);
  status = $state<LiveStatus>("connecting");
  roundTripMs = $state<number | null>(null);
  provider = $state<ProviderName | null>(null);
  providerState = $state<string | null>(null);
  callStatus = $state<CallStatus | null>(null);
  sessionEnded = $state(false);
  sentiments = $state<Array<{ turn: Sentiment; at: number }>>([]);
  conversation = $state<Sentiment | null>(null);
  escalations = $state<Escalation[]>([]);
  feed = $state<FeedItem[]>([]);
  /** The takeover as the server announced it: who holds it and whether this tab asked for it. */
  takeover = $state<{ by: string; mine: boolean } | null>(null);
  liveLines = $state<LiveLine[]>([]);
  /** Audio frames from the caller arrive only while this tab holds a takeover. */
  onAudio: ((frame: ArrayBuffer) => void) | null = null;
  /** The takeover this tab asked for ended (released, refused, or the socket dropped): stop the audio. */
  onTakeoverLost: (() => void) | null = null;

  private socket: LiveSocket | null = null;
  private poll: ReturnType<typeof setInterval> | undefined;
  private nextFeedId = 1;
  private askedTakeover = false;

  constructor(
    readonly sessionId: string,
    private readonly userId: string | null,
  ) {}

  /** The transcript to show: the stored lines, then the live ones the store has not caught up with, by time. */
  readonly lines = $derived.by((): LiveLine[] => {
    const stored = (this.detail?.transcript ?? []).map((line) => {
      const at = Date.parse(line.at);
      return {
        key: keyOf(line.role, at, line.text),
        role: line.role,
        text: line.text,
        provider: line.provider,
        interrupted: line.interrupted,
        at,
      };
    });
    const seen = new Map(stored.map((line) => [line.key, line]));
    const merged = [...stored];
    for (const line of this.liveLines) {
      const known = seen.get(line.key);
      if (known) known.interrupted ||= line.interrupted;
      else merged.push(line);
    }
    return merged.sort((a, b) => a.at - b.at);
  });

  readonly ended = $derived(
    this.sessionEnded || this.detail?.status === "ended" || (this.callStatus !== null && ENDED_CALL_STATUSES.includes(this.callStatus)),
  );

  async start(): Promise<void> {
    await this.refresh();
    if (this.detail?.status === "ended") return;
    this.socket = new LiveSocket({
      sessionId: this.sessionId,
      role: "supervisor",
      heartbeatMs: 10_000,
      onEvent: (event) => this.apply(event),
      onAudio: (frame) => this.onAudio?.(frame),
      onStatus: (status) => this.statusChanged(status),
      onRoundTrip: (ms) => {
        this.roundTripMs = ms;
      },
    });
    this.poll = setInterval(() => void this.refresh(), DETAIL_POLL_MS);
  }

  stop(): void {
    clearInterval(this.poll);
    this.socket?.close();
    this.socket = null;
  }

  async refresh(): Promise<void> {
    try {
      const detail = await api<SessionDetail>("GET", `/api/v1/sessions/${encodeURIComponent(this.sessionId)}`);
      this.detail = detail;
      this.loadError = null;
      this.provider ??= detail.live?.provider ?? detail.provider;
      this.providerState ??= detail.live?.providerState ?? null;
      if (detail.call && (this.callStatus === null || ENDED_CALL_STATUSES.includes(detail.call.status)))
        this.callStatus = detail.call.status;
      if (detail.escalations.length > this.escalations.length) this.escalations = detail.escalations;
      if (detail.status === "ended") this.stopPolling();
    } catch (error) {
      this.loadError = error instanceof Error ? error.message : String(error);
    }
  }

  async loadSwitches(): Promise<void> {
    try {
      const history = await api<{ items: SwitchEntry[] }>("GET", `/api/v1/sessions/${encodeURIComponent(this.sessionId)}/switch-history`);
      this.switches = history.items;
      this.switchesError = null;
    } catch (error) {
      this.switchesError = error instanceof Error ? error.message : String(error);
    }
  }

  whisper(text: string): boolean {
    return this.socket?.send({ type: "whisper", text }) ?? false;
  }

  requestTakeover(): boolean {
    this.askedTakeover = true;
    return this.socket?.send({ type: "takeover" }) ?? false;
  }

  release(): boolean {
    return this.socket?.send({ type: "release" }) ?? false;
  }

  sendAudio(frame: ArrayBuffer): void {
    if (this.takeover?.mine) this.socket?.sendAudio(frame);
  }

  pingNow(): void {
    this.socket?.ping();
  }

  private stopPolling(): void {
    clearInterval(this.poll);
  }

  private statusChanged(status: LiveStatus): void {
    this.status = status;
    // The server releases a takeover whose socket closed; this tab hears of it only by losing the socket.
    if (status !== "open" && this.takeover?.mine) this.loseTakeover("The connection dropped, so the call went back to the agent.");
  }

  private apply(event: LiveEvent): void {
    switch (event.type) {
      case "hello":
        this.provider = event.provider;
        if (event.callStatus) this.callStatus = event.callStatus;
        return;
      case "transcript":
        return this.addLine({
          key: keyOf(event.role, event.at, event.text),
          role: event.role,
          text: event.text,
          provider: event.provider,
          interrupted: event.interrupted,
          at: event.at,
        });
      case "barge_in":
        this.markLastAgentLineInterrupted();
        return this.note("barge_in", event.at, `The caller talked over the agent (${event.heardMs} ms of the reply heard).`);
      case "call_state":
        this.callStatus = event.status;
        return this.note("call_state", event.at, `Call ${event.status.replace("_", " ")}${event.reason ? ` (${event.reason})` : ""}.`);
      case "provider":
        this.provider = event.provider;
        this.providerState = event.state;
        return this.note("provider", event.at, `Provider ${event.provider} ${event.state}${event.detail ? `: ${event.detail}` : ""}.`);
      case "provider_switched":
        if (event.success) this.provider = event.to;
        void this.loadSwitches();
        return this.note(
          "switch",
          event.at,
          event.success
            ? `Switched from ${event.from} to ${event.to} (${event.reason.replace("_", " ")}).`
            : `Switch from ${event.from} to ${event.to} failed: ${event.error ?? "unknown error"}.`,
        );
      case "tool_call":
        return this.note("tool_call", event.at, `Tool ${event.name} ${event.status}${event.result ? `: ${event.result}` : ""}.`);
      case "dtmf":
        return this.note("dtmf", event.at, `The caller pressed ${event.digit}.`);
      case "sentiment":
        this.sentiments = [...this.sentiments.slice(-49), { turn: event.turn, at: event.at }];
        this.conversation = event.conversation;
        return;
      case "escalation":
        this.escalations = [
          ...this.escalations,
          {
            rule: event.rule,
            reason: event.reason,
            at: new Date(event.at).toISOString(),
            transfer: event.transfer ? { to: event.transfer.to, ok: event.transfer.ok, error: event.transfer.error } : null,
          },
        ];
        return this.note("escalation", event.at, `Escalation (${event.rule}): ${event.reason}.`);
      case "session_ended":
        this.sessionEnded = true;
        this.stopPolling();
        void this.refresh();
        return;
      case "whisper":
        return this.note("whisper", event.at, `Whisper to the agent: “${event.text}”`);
      case "takeover": {
        const mine = this.askedTakeover && event.by === this.userId;
        this.askedTakeover = false;
        this.takeover = { by: event.by, mine };
        return this.note(
          "takeover",
          event.at,
          mine ? "You took the call over: the agent is silent." : "Another supervisor took the call over.",
        );
      }
      case "release":
        if (this.takeover?.mine) this.onTakeoverLost?.();
        this.takeover = null;
        return this.note(
          "release",
          event.at,
          event.reason === "released" ? "The call went back to the agent." : "The supervisor left, so the call went back to the agent.",
        );
      case "error":
        if (event.code === "takeover_held" || event.code === "forbidden") {
          this.askedTakeover = false;
          this.onTakeoverLost?.();
        }
        return this.note("error", Date.now(), event.message);
      case "playback_clear":
      case "pong":
        return;
    }
  }

  private loseTakeover(reason: string): void {
    this.onTakeoverLost?.();
    this.takeover = null;
    this.note("release", Date.now(), reason);
  }

  private addLine(line: LiveLine): void {
    this.liveLines = [...this.liveLines.slice(-(MAX_LIVE_LINES - 1)), line];
  }

  /** `barge_in` names the provider's item, which /live lines do not carry: the agent line being spoken is the last one. */
  private markLastAgentLineInterrupted(): void {
    const index = this.liveLines.findLastIndex((line) => line.role === "agent");
    if (index < 0) return;
    this.liveLines = this.liveLines.map((line, i) => (i === index ? { ...line, interrupted: true } : line));
  }

  private note(kind: FeedItem["kind"], at: number, text: string): void {
    this.feed = [...this.feed.slice(-(MAX_FEED - 1)), { id: this.nextFeedId++, at, kind, text }];
  }
}
