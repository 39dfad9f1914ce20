import type { WebSocket } from "ws";
import type { ConnectionRecorder } from "./recorder.ts";
import type { Scenario } from "./scenarios.ts";
import type { VadSettings } from "./vad.ts";

/** Simulator-wide behaviour; every provider session reads it through its connection. */
export interface SimulatorSettings {
  /** Agent audio chunk length; the real services send ~20–100 ms per message. */
  audioChunkMs: number;
  /** How much faster than real time agent audio is sent (the real services generate ahead of playback). */
  speedFactor: number;
  /** Default model "thinking" time before the first response output (a scenario may override it). */
  responseDelayMs: number;
  vad: VadSettings;
  /** Deepgram closes a connection that sent neither audio nor a message for this long. */
  deepgramIdleTimeoutMs: number;
  /** Gemini: time between `goAway` and the close it announces. */
  geminiGoAwayGraceMs: number;
}

/** Timers owned by one connection, all cancelled when it ends, so nothing fires into a closed socket. */
export class TimerSet {
  readonly #pending = new Set<ReturnType<typeof setTimeout>>();
  #disposed = false;

  after(delayMs: number, callback: () => void): () => void {
    if (this.#disposed) return () => {};
    const timer = setTimeout(
      () => {
        this.#pending.delete(timer);
        callback();
      },
      Math.max(0, delayMs),
    );
    this.#pending.add(timer);
    return () => {
      clearTimeout(timer);
      this.#pending.delete(timer);
    };
  }

  dispose(): void {
    this.#disposed = true;
    for (const timer of this.#pending) clearTimeout(timer);
    this.#pending.clear();
  }
}

/**
 * One accepted provider WebSocket: sends with fault injection applied (stall, drop after N messages), records
 * what went out, and tears everything down once, however the connection ends.
 */
export class ProviderConnection {
  readonly socket: WebSocket;
  readonly recorder: ConnectionRecorder;
  readonly scenario: Scenario;
  readonly settings: SimulatorSettings;
  readonly timers = new TimerSet();
  #sentCount = 0;
  #ended = false;
  #closingBySimulator = false;
  readonly #endListeners: Array<() => void> = [];

  constructor(socket: WebSocket, recorder: ConnectionRecorder, scenario: Scenario, settings: SimulatorSettings) {
    this.socket = socket;
    this.recorder = recorder;
    this.scenario = scenario;
    this.settings = settings;
    socket.on("close", (code, reason) => {
      const by = this.#closingBySimulator ? "simulator" : "client";
      this.recorder.close ??= { code, reason: reason.toString(), by };
      this.#end();
    });
    // ws reports protocol violations (e.g. an oversized message → 1009) as errors, then closes on its own.
    socket.on("error", () => {
      this.#closingBySimulator = true;
    });
  }

  get isOpen(): boolean {
    return !this.#ended && this.socket.readyState === this.socket.OPEN;
  }

  /** Model response delay for this connection's scenario. */
  get responseDelayMs(): number {
    return this.scenario.responseDelayMs ?? this.settings.responseDelayMs;
  }

  onEnd(listener: () => void): void {
    this.#endListeners.push(listener);
  }

  /** Sends a JSON message; Gemini frames its JSON as binary, the others as text. */
  sendJson(message: object, type: string, framing: "text" | "binary" = "text"): void {
    const json = JSON.stringify(message);
    this.#send(type, framing === "binary" ? Buffer.from(json) : json);
  }

  sendAudio(bytes: Uint8Array): void {
    this.#send("binary-audio", bytes);
  }

  close(code: number, reason = ""): void {
    if (!this.isOpen) return;
    this.#closingBySimulator = true;
    this.socket.close(code, reason);
  }

  /** Abrupt loss: the TCP connection is destroyed without a close frame. */
  drop(): void {
    if (this.#ended) return;
    this.recorder.close = { code: 1006, reason: "", by: "drop" };
    this.socket.terminate();
    this.#end();
  }

  #send(type: string, data: string | Uint8Array): void {
    if (!this.isOpen) return;
    const { stallAfterMessages, dropAfterMessages } = this.scenario;
    if (stallAfterMessages !== undefined && this.#sentCount >= stallAfterMessages) {
      if (this.recorder.suppressedMessages++ === 0) this.recorder.fault("stall");
      return;
    }
    this.socket.send(data);
    this.#sentCount++;
    this.recorder.serverMessages.push({ type, at: performance.timeOrigin + performance.now() });
    if (dropAfterMessages !== undefined && this.#sentCount >= dropAfterMessages) {
      this.recorder.fault("drop-after-messages");
      this.drop();
    }
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.recorder.closedAt = performance.timeOrigin + performance.now();
    this.timers.dispose();
    for (const listener of this.#endListeners) listener();
  }
}

export interface ProviderFaultHooks {
  /** The provider's in-band error message. */
  errorEvent(code: string, message: string): void;
  /** Gemini's `goAway`; absent for providers without one. */
  goAway?(timeLeftMs: number): void;
}

/** Arms the scenario's time-based faults for a freshly accepted connection. */
export function scheduleFaults(connection: ProviderConnection, hooks: ProviderFaultHooks): void {
  const { scenario, timers, recorder } = connection;
  if (scenario.dropAfterMessages === 0) {
    recorder.fault("drop-after-messages");
    connection.drop();
    return;
  }
  if (scenario.dropAfterMs !== undefined) {
    timers.after(scenario.dropAfterMs, () => {
      recorder.fault("drop-after-ms");
      connection.drop();
    });
  }
  const close = scenario.closeAfterMs;
  if (close) {
    timers.after(close.afterMs, () => {
      recorder.fault("close");
      connection.close(close.code, close.reason);
    });
  }
  const errorEvent = scenario.errorEventAfterMs;
  if (errorEvent) {
    timers.after(errorEvent.afterMs, () => {
      recorder.fault("error-event");
      hooks.errorEvent(errorEvent.code, errorEvent.message);
    });
  }
  const { goAway } = hooks;
  if (scenario.goAwayAfterMs !== undefined && goAway) {
    timers.after(scenario.goAwayAfterMs, () => {
      recorder.fault("go-away");
      goAway(connection.settings.geminiGoAwayGraceMs);
    });
  }
}
