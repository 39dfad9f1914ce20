import { FRAME_MS, SAMPLES_PER_FRAME, samplesToMs, speechEndSample } from "./audio.ts";

/**
 * What the simulated caller says and when. Carriers send a frame every 20 ms for the whole call, silence
 * included, so the script is pulled once per frame and answers with the samples (and DTMF digit) for it.
 */
export interface CallerScriptOptions {
  /** 8 kHz mono PCM16 utterances, spoken in order. */
  utterances?: readonly Int16Array[];
  /** Silence before each utterance. Default 1500 ms (leaves room for the agent's greeting). */
  pauseMs?: number;
  /** Wait until the agent has stopped talking before each utterance. Default true; false speaks over it (barge-in). */
  waitForAgent?: boolean;
  /** How long the agent must have been quiet to count as done. Default 700 ms. */
  agentQuietMs?: number;
  /** Speak anyway after waiting this long for the agent. Default 15 s. */
  maxWaitMs?: number;
  /** DTMF digits pressed after the last utterance, one every 250 ms. */
  dtmf?: string;
  /** Keep listening this long after both sides went quiet. Default 4000 ms. */
  lingerMs?: number;
}

export interface Utterance {
  index: number;
  startMs: number;
  /** End of the last speech in the utterance (trailing silence excluded). */
  speechEndMs: number;
}

export type CallerFrame = { samples: Int16Array; digit?: string } | "done";

export type CallerScriptEvent =
  | { kind: "utterance-start"; atMs: number; index: number }
  | { kind: "utterance-end"; atMs: number; index: number }
  | { kind: "dtmf"; atMs: number; digit: string };

const DTMF_SPACING_MS = 250;
const SILENCE = new Int16Array(SAMPLES_PER_FRAME);

type Phase =
  | { name: "not-started" }
  | { name: "pausing"; sinceMs: number }
  | { name: "speaking"; offset: number }
  | { name: "dialing"; nextDigit: number; nextAtMs: number }
  | { name: "lingering"; sinceMs: number }
  | { name: "done" };

export class CallerScript {
  readonly utterances: Utterance[] = [];
  readonly #sources: readonly Int16Array[];
  readonly #pauseMs: number;
  readonly #waitForAgent: boolean;
  readonly #agentQuietMs: number;
  readonly #maxWaitMs: number;
  readonly #dtmf: string;
  readonly #lingerMs: number;
  readonly #onEvent: (event: CallerScriptEvent) => void;
  #phase: Phase = { name: "not-started" };
  #lastCallerActivityMs = 0;

  constructor(options: CallerScriptOptions, onEvent: (event: CallerScriptEvent) => void = () => {}) {
    this.#sources = options.utterances ?? [];
    this.#pauseMs = options.pauseMs ?? 1500;
    this.#waitForAgent = options.waitForAgent ?? true;
    this.#agentQuietMs = options.agentQuietMs ?? 700;
    this.#maxWaitMs = options.maxWaitMs ?? 15_000;
    this.#dtmf = options.dtmf ?? "";
    this.#lingerMs = options.lingerMs ?? 4000;
    this.#onEvent = onEvent;
  }

  /** The frame that starts at `atMs`; `agentPlayingUntilMs` says when the agent's queued audio ends. */
  next(atMs: number, agentPlayingUntilMs: number): CallerFrame {
    const phase = this.#phase;
    switch (phase.name) {
      case "not-started": // the first pause runs from the first frame, i.e. once the stream is up
        this.#phase = { name: "pausing", sinceMs: atMs };
        return this.next(atMs, agentPlayingUntilMs);
      case "pausing":
        return this.#pause(phase.sinceMs, atMs, agentPlayingUntilMs);
      case "speaking":
        return this.#speak(phase.offset, atMs);
      case "dialing":
        return this.#dial(phase.nextDigit, phase.nextAtMs, atMs);
      case "lingering": {
        const quietSinceMs = Math.max(phase.sinceMs, this.#lastCallerActivityMs, agentPlayingUntilMs);
        if (atMs - quietSinceMs < this.#lingerMs) return { samples: SILENCE };
        this.#phase = { name: "done" };
        return "done";
      }
      case "done":
        return "done";
    }
  }

  #pause(sinceMs: number, atMs: number, agentPlayingUntilMs: number): CallerFrame {
    const index = this.utterances.length;
    const source = this.#sources[index];
    if (!source) {
      this.#phase = this.#dtmf ? { name: "dialing", nextDigit: 0, nextAtMs: atMs + this.#pauseMs } : { name: "lingering", sinceMs: atMs };
      return this.next(atMs, agentPlayingUntilMs);
    }
    const paused = atMs - sinceMs >= this.#pauseMs;
    const agentDone = !this.#waitForAgent || atMs - agentPlayingUntilMs >= this.#agentQuietMs;
    const waitedTooLong = atMs - sinceMs >= this.#pauseMs + this.#maxWaitMs;
    if (!(paused && (agentDone || waitedTooLong))) return { samples: SILENCE };
    const speechEndMs = atMs + samplesToMs(speechEndSample(source));
    this.utterances.push({ index, startMs: atMs, speechEndMs });
    this.#onEvent({ kind: "utterance-start", atMs, index });
    this.#phase = { name: "speaking", offset: 0 };
    return this.#speak(0, atMs);
  }

  #speak(offset: number, atMs: number): CallerFrame {
    const utterance = this.utterances[this.utterances.length - 1]!;
    const source = this.#sources[utterance.index]!;
    const samples = new Int16Array(SAMPLES_PER_FRAME);
    samples.set(source.subarray(offset, offset + SAMPLES_PER_FRAME));
    const nextOffset = offset + SAMPLES_PER_FRAME;
    const frameEndMs = atMs + FRAME_MS;
    if (nextOffset >= source.length) {
      this.#onEvent({ kind: "utterance-end", atMs: utterance.speechEndMs, index: utterance.index });
      this.#lastCallerActivityMs = frameEndMs;
      this.#phase = { name: "pausing", sinceMs: frameEndMs };
    } else {
      this.#phase = { name: "speaking", offset: nextOffset };
    }
    return { samples };
  }

  #dial(nextDigit: number, nextAtMs: number, atMs: number): CallerFrame {
    const digit = this.#dtmf[nextDigit];
    if (digit === undefined) {
      this.#phase = { name: "lingering", sinceMs: atMs };
      return { samples: SILENCE };
    }
    if (atMs < nextAtMs) return { samples: SILENCE };
    this.#onEvent({ kind: "dtmf", atMs, digit });
    this.#lastCallerActivityMs = atMs;
    this.#phase = { name: "dialing", nextDigit: nextDigit + 1, nextAtMs: atMs + DTMF_SPACING_MS };
    return { samples: SILENCE, digit };
  }
}
