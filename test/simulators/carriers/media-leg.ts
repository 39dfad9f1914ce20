import WebSocket from "ws";
import { decodeG711, encodeG711, FRAME_MS } from "./audio.ts";
import type { CallerScript } from "./caller-script.ts";
import { type MediaClock, sleepUntil } from "./clock.ts";
import { type CarrierMediaDialect, MediaProtocolError } from "./media-dialect.ts";
import { AgentPlayback } from "./playback.ts";
import type { Timeline } from "./timeline.ts";

/**
 * One carrier media stream: connects to the platform's WebSocket, sends the caller's audio a frame every 20 ms of
 * media time, plays what the platform sends into an AgentPlayback, and echoes marks as a real carrier does.
 */
export interface MediaLegOptions<Message> {
  /** The address to connect to (already rewritten to one this process can reach). */
  url: string;
  headers?: Record<string, string>;
  dialect: CarrierMediaDialect<Message>;
  clock: MediaClock;
  script: CallerScript;
  timeline: Timeline;
  /** The leg ends (caller hangs up) at this media time even if the script has more to say. */
  maxDurationMs?: number;
  /** Shuffle media frames within consecutive blocks of this many (Telnyx does not guarantee order). 0/1 = off. */
  reorderWindow?: number;
  /** Send every Nth media frame twice. 0 = off. */
  duplicateEvery?: number;
  /** Seed for the reordering, so a failing run can be replayed. */
  seed?: number;
  onDtmf?: (digit: string) => void;
  onConnected?: () => void;
}

export type MediaLegEndReason = "script-done" | "ended-by-carrier" | "closed-by-platform" | "max-duration" | "connect-failed";

export interface MediaLegResult {
  endReason: MediaLegEndReason;
  playback: AgentPlayback;
  mediaFramesSent: number;
  mediaMessagesReceived: number;
  marksReceived: string[];
  marksPlayed: string[];
  clears: number;
}

export interface MediaLeg {
  /** Settles once the stream is over; never rejects (failures are in the timeline). */
  readonly done: Promise<MediaLegResult>;
  /** The carrier ends the stream (call hung up or redirected): `stop`, then close. */
  end(): void;
}

const CONNECT_TIMEOUT_MS = 10_000;

export function startMediaLeg<Message>(options: MediaLegOptions<Message>): MediaLeg {
  const { dialect, clock, script, timeline } = options;
  // Carriers do not offer permessage-deflate on their media streams (ws would, by default).
  const socket = new WebSocket(options.url, { headers: options.headers, handshakeTimeout: CONNECT_TIMEOUT_MS, perMessageDeflate: false });
  let opened = false;
  let sequenceNumber = 0;
  let endReason: MediaLegEndReason | undefined;
  let wakePacer: () => void = () => {};
  const result: Omit<MediaLegResult, "endReason"> = {
    playback: new AgentPlayback(clock, (name) => {
      result.marksPlayed.push(name);
      timeline.add("mark-played", name);
      send(dialect.markPlayed(name, ++sequenceNumber));
    }),
    mediaFramesSent: 0,
    mediaMessagesReceived: 0,
    marksReceived: [],
    marksPlayed: [],
    clears: 0,
  };
  const send = (message: Message) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  };
  const finish = (reason: MediaLegEndReason) => {
    endReason ??= reason;
    wakePacer();
  };

  // A refused upgrade surfaces here as "Unexpected server response: <status>", followed by close.
  socket.on("error", (error) => {
    if (endReason !== undefined) return; // e.g. the carrier ended the call while the socket was connecting
    timeline.add("error", `${dialect.carrier} media socket: ${error.message}`);
    if (!opened) finish("connect-failed");
  });
  socket.on("close", (code, reason) => {
    if (endReason === undefined) {
      timeline.add("media-closed", `closed by platform: ${code} ${reason.toString()}`.trim());
      finish("closed-by-platform");
    }
  });
  socket.on("message", (data, isBinary) => {
    if (isBinary) {
      timeline.add("error", `${dialect.carrier} protocol: binary frame from platform`);
      return;
    }
    try {
      handleCommand(JSON.parse(data.toString()));
    } catch (error) {
      const detail = error instanceof MediaProtocolError || error instanceof SyntaxError ? error.message : String(error);
      timeline.add("error", `${dialect.carrier} protocol: ${detail}`);
    }
  });

  const handleCommand = (message: unknown) => {
    const command = dialect.parse(message);
    switch (command.kind) {
      case "media": {
        result.mediaMessagesReceived++;
        const startsBurst = result.playback.playingUntilMs <= clock.now();
        if (startsBurst) timeline.add("agent-audio", "first frame of agent speech");
        result.playback.enqueue(decodeG711(dialect.playbackCodec, Buffer.from(command.payloadBase64, "base64")));
        return;
      }
      case "mark":
        result.marksReceived.push(command.name);
        timeline.add("mark", command.name);
        result.playback.mark(command.name);
        return;
      case "clear":
        result.clears++;
        timeline.add("clear");
        result.playback.clear();
        return;
    }
  };

  const done = new Promise<MediaLegResult>((resolve) => {
    socket.once("open", () => {
      opened = true;
      timeline.add("media-connected", options.url);
      send(dialect.connected());
      send(dialect.start(++sequenceNumber));
      options.onConnected?.();
      void pace().then(() => resolve({ ...result, endReason: endReason ?? "script-done" }));
    });
    socket.once("close", () => {
      if (!opened) resolve({ ...result, endReason: "connect-failed" });
    });
  });

  const shuffler = new FrameShuffler<Message>(options.reorderWindow ?? 0, options.seed ?? 1);
  const pace = async () => {
    const streamStartMs = clock.now();
    for (let frameIndex = 0; endReason === undefined; frameIndex++) {
      const frameAtMs = streamStartMs + frameIndex * FRAME_MS;
      if (options.maxDurationMs !== undefined && frameAtMs >= options.maxDurationMs) {
        finish("max-duration");
        break;
      }
      await Promise.race([sleepUntil(clock, frameAtMs), new Promise<void>((wake) => (wakePacer = wake))]);
      if (endReason !== undefined) break;
      const frame = script.next(frameAtMs, result.playback.playingUntilMs);
      if (frame === "done") {
        finish("script-done");
        break;
      }
      if (frame.digit !== undefined) {
        timeline.add("dtmf", frame.digit, frameAtMs);
        send(dialect.dtmf(frame.digit, ++sequenceNumber));
        options.onDtmf?.(frame.digit);
      }
      const message = dialect.media({
        sequenceNumber: ++sequenceNumber,
        chunk: frameIndex + 1,
        timestampMs: frameIndex * FRAME_MS,
        payloadBase64: Buffer.from(encodeG711(dialect.codec, frame.samples)).toString("base64"),
      });
      result.mediaFramesSent++;
      const duplicate = options.duplicateEvery ? (frameIndex + 1) % options.duplicateEvery === 0 : false;
      for (const ready of shuffler.push(message, duplicate)) send(ready);
    }
    for (const ready of shuffler.flush()) send(ready);
    result.playback.hangUp();
    send(dialect.stop(++sequenceNumber));
    socket.close(1000, "stream ended");
  };

  return {
    done,
    end() {
      finish("ended-by-carrier");
      if (!opened) socket.terminate();
    },
  };
}

/**
 * Holds media messages in consecutive blocks of `window` and releases each block shuffled, so a frame's first
 * copy stays within its block: the out-of-order delivery Telnyx warns about, bounded and reproducible by seed.
 * Duplicates follow at the end of their block.
 */
class FrameShuffler<Message> {
  readonly #window: number;
  readonly #random: () => number;
  #block: Message[] = [];
  #duplicates: Message[] = [];

  constructor(window: number, seed: number) {
    this.#window = window;
    this.#random = mulberry32(seed);
  }

  push(message: Message, duplicate: boolean): Message[] {
    this.#block.push(message);
    if (duplicate) this.#duplicates.push(message);
    return this.#block.length >= Math.max(1, this.#window) ? this.flush() : [];
  }

  flush(): Message[] {
    const block = this.#block;
    for (let i = block.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [block[i], block[j]] = [block[j]!, block[i]!];
    }
    const released = [...block, ...this.#duplicates];
    this.#block = [];
    this.#duplicates = [];
    return released;
  }
}

/** Small seeded PRNG (public-domain mulberry32): reproducible shuffles without a dependency. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
