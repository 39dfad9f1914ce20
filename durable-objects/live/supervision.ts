import { BROWSER_AUDIO_RATE, type LiveEvent, type SupervisorCommand } from "../../workers/shared/live-protocol.ts";
import type { Logger } from "../../workers/shared/logger.ts";
import type { AudioFormat } from "../media/audio/audio-format.ts";
import { base64Capacity, decodeBase64Into, encodeBase64 } from "../media/audio/pcm16.ts";
import { createTranscoder, sameFormat, type Transcode } from "../media/audio/transcoder.ts";
import type { AudioTap } from "../media/audio-tap.ts";
import type { CallerLeg } from "../media/caller-leg.ts";
import type { VoiceSession } from "../voice/voice-session.ts";
import { type SpeechToTextEndpoint, SupervisorStt } from "./supervisor-stt.ts";

/** What a supervisor's browser speaks and hears: PCM16 little-endian, 16 kHz mono, like a web caller. */
const SUPERVISOR_AUDIO: AudioFormat = { encoding: "pcm16", sampleRate: BROWSER_AUDIO_RATE };
/** The item the takeover's audio is filed under on the agent's side of the recording (no reply of the agent's). */
const TAKEOVER_ITEM = "supervisor-takeover";

export interface SupervisionHost {
  /** The session's conversation (created on need); null once the session has ended. */
  voice(): VoiceSession | null;
  /** The caller's leg, or null while the caller is not connected. */
  leg(): CallerLeg | null;
  /** An answer or the caller's audio to one socket. */
  sendTo(ws: WebSocket, data: LiveEvent | Uint8Array): void;
  /** An event for every supervisor watching (never a web session's caller). */
  publish(event: LiveEvent): void;
  /** Where the supervisor's speech is transcribed; null when this deployment has no speech-to-text configured. */
  speechToText(): SpeechToTextEndpoint | null;
  /** The session's recording: what the caller hears of the supervisor goes on the agent's side, as the agent's would. */
  tap: AudioTap;
  log(): Logger;
}

/**
 * Supervisors in the loop, on the socket side: a whisper goes to the agent as guidance; one supervisor at a time
 * takes the call over — the agent is silenced (voice-session.ts), the supervisor's audio is transcoded to the
 * caller's leg (and copied to the recording's agent side) and the caller's audio to the supervisor — until they
 * release it or their socket goes. Every supervisor watching gets `whisper`, `takeover` and `release`. The
 * supervisor's words become `supervisor` transcript lines through a speech-to-text stream of the takeover's own
 * (supervisor-stt.ts), so the agent resumes knowing them. The holder is kept in memory: a phone call keeps the object
 * awake (its carrier socket is not hibernatable); a web session evicted mid-takeover loses it, and its agent (rebuilt
 * from storage) is not silenced any more.
 *
 * The audio paths are per frame: no awaits, no storage, no logs; one transcoder per direction, rebuilt only when
 * the leg's format changes, and one reused byte buffer.
 */
export class Supervision {
  private holder: { ws: WebSocket; by: string; stt: SupervisorStt } | null = null;
  private toSupervisor: { from: AudioFormat; transcode: Transcode } | null = null;
  private toCaller: { to: AudioFormat; transcode: Transcode } | null = null;
  private bytes = new Uint8Array(0);

  constructor(private readonly host: SupervisionHost) {}

  command(ws: WebSocket, by: string, command: SupervisorCommand): void {
    const voice = this.host.voice();
    if (!voice) return this.refuse(ws, "session_inactive", "The session has no conversation to supervise");
    const at = Date.now();
    switch (command.type) {
      case "whisper":
        voice.whisper(command.text);
        return this.host.publish({ type: "whisper", text: command.text, by, at });
      case "takeover":
        if (this.holder?.ws === ws) return;
        if (this.holder) return this.refuse(ws, "takeover_held", "Another supervisor has taken the call over");
        voice.takeOver();
        this.holder = { ws, by, stt: this.openStt() };
        return this.host.publish({ type: "takeover", by, at });
      case "release":
        if (this.holder?.ws !== ws) return this.refuse(ws, "not_taken_over", "This socket does not hold a takeover");
        return this.end("released");
    }
  }

  holds(ws: WebSocket): boolean {
    return this.holder !== null && this.holder.ws === ws;
  }

  /** The holder's socket closed or was cut off (revoked): the call goes back to the agent. */
  socketGone(ws: WebSocket): void {
    if (this.holds(ws)) this.end("supervisor_left");
  }

  /**
   * The call ended while taken over: the takeover's stream is finished now (the holder's socket may stay open long
   * after), so what it did not transcribe is noted while the conversation still exists.
   */
  sessionEnded(): void {
    if (this.holder) this.noteUntranscribed(this.holder.stt.finish());
  }

  /** A new caller leg (or its format is now known): transcoders are chosen again on the next frame. */
  legChanged(): void {
    this.toSupervisor = null;
    this.toCaller = null;
  }

  // ── per frame ────────────────────────────────────────────────────────────────────────────────────────────

  /** A caller frame, base64 in the leg's inbound format: to the holder as PCM16 16 kHz. */
  callerAudio(base64: string): void {
    const holder = this.holder;
    if (!holder) return;
    const from = this.host.leg()?.inbound;
    if (!from) return;
    if (!this.toSupervisor || !sameFormat(this.toSupervisor.from, from)) {
      this.toSupervisor = { from, transcode: createTranscoder(from, SUPERVISOR_AUDIO) };
    }
    const pcm = this.toSupervisor.transcode(base64);
    if (!pcm) return;
    const capacity = base64Capacity(pcm);
    if (this.bytes.length < capacity) this.bytes = new Uint8Array(capacity);
    this.host.sendTo(holder.ws, this.bytes.subarray(0, decodeBase64Into(pcm, this.bytes)));
  }

  /** A web caller's microphone frame, already PCM16 16 kHz: to the holder as it is. */
  callerPcm16(pcm16: Uint8Array): void {
    if (this.holder) this.host.sendTo(this.holder.ws, pcm16);
  }

  /** The holder's frame (PCM16 16 kHz) to the caller, in the codec the leg must be sent. */
  supervisorAudio(pcm16: Uint8Array): void {
    const leg = this.host.leg();
    if (!leg || !this.holder) return;
    if (!this.toCaller || !sameFormat(this.toCaller.to, leg.outbound)) {
      this.toCaller = { to: leg.outbound, transcode: createTranscoder(SUPERVISOR_AUDIO, leg.outbound) };
    }
    const base64 = encodeBase64(pcm16);
    const audio = this.toCaller.transcode(base64);
    if (audio) {
      leg.sendAudio(audio);
      // Sent with no mark after it, so heard as it is sent: the recording places it now on the caller's clock.
      this.host.tap.agent(audio, leg.outbound, TAKEOVER_ITEM, null);
    }
    // What the caller was sent is what gets transcribed; the stream's own trouble never reaches this path.
    this.holder.stt.audio(base64, pcm16.byteLength);
  }

  /** The takeover's speech-to-text; its lines go to the conversation, even one that arrives after the release. */
  private openStt(): SupervisorStt {
    return new SupervisorStt(this.host.speechToText(), {
      heard: (text) => this.host.voice()?.supervisorSaid(text),
      log: () => this.host.log(),
    });
  }

  private end(reason: "released" | "supervisor_left"): void {
    const holder = this.holder!;
    this.holder = null;
    this.legChanged();
    // Before the release, so the agent's context gets it with the rest of the takeover.
    this.noteUntranscribed(holder.stt.finish());
    this.host.voice()?.release();
    this.host.publish({ type: "release", by: holder.by, reason, at: Date.now() });
  }

  /** Never a made-up line: how much of the supervisor's audio has no transcript. */
  private noteUntranscribed(seconds: number): void {
    if (seconds > 0) this.host.voice()?.supervisorSaid(`[${seconds} s of the supervisor's audio, not transcribed]`);
  }

  private refuse(ws: WebSocket, code: string, message: string): void {
    this.host.sendTo(ws, { type: "error", code, message });
  }
}
