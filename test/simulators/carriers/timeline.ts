import type { MediaClock } from "./clock.ts";

export type TimelineKind =
  | "webhook"
  | "status-callback"
  | "twiml"
  | "command"
  | "media-connected"
  | "utterance-start"
  | "utterance-end"
  | "dtmf"
  | "agent-audio"
  | "mark"
  | "mark-played"
  | "clear"
  | "media-closed"
  | "hangup"
  | "error";

export interface TimelineEntry {
  /** Media-clock milliseconds since the call started. */
  atMs: number;
  kind: TimelineKind;
  detail: string;
}

/** What happened during one simulated call, in media time; printed by the CLI and asserted on by tests. */
export class Timeline {
  readonly #clock: MediaClock;
  readonly #entries: TimelineEntry[] = [];

  constructor(clock: MediaClock) {
    this.#clock = clock;
  }

  add(kind: TimelineKind, detail = "", atMs = this.#clock.now()): void {
    this.#entries.push({ atMs, kind, detail });
  }

  /** Entries in time order (some are recorded after the fact, e.g. the end of an utterance's speech). */
  entries(): TimelineEntry[] {
    return [...this.#entries].sort((a, b) => a.atMs - b.atMs);
  }

  errors(): string[] {
    return this.#entries.filter((entry) => entry.kind === "error").map((entry) => entry.detail);
  }
}
