/** Frames over the rate are dropped; a socket still over it after this many consecutive seconds is closed. */
const SUSTAINED_SECONDS = 3;

interface Window {
  startedAt: number;
  frames: number;
  dropped: number;
  /** Consecutive earlier one-second windows that also went over the rate. */
  strikes: number;
}

/** What to do with one frame: pass it on, drop it (over the rate), or close the socket (a flood, not jitter). */
export type RateVerdict = "ok" | "drop" | "abuse";

/**
 * A per-socket rate bound on one kind of frame: at most `perSecond` in a one-second window (the window starts at the
 * first frame after the last one ended); the excess is dropped. Twice the rate within one second, or over it
 * SUSTAINED_SECONDS seconds running, is abuse. In memory only: a woken object simply starts fresh windows.
 */
export class FrameRate {
  private readonly windows = new Map<WebSocket, Window>();

  constructor(private readonly perSecond: number) {}

  admit(ws: WebSocket, now = Date.now()): RateVerdict {
    let window = this.windows.get(ws);
    if (!window || now - window.startedAt >= 1_000) {
      const consecutive = window !== undefined && window.dropped > 0 && now - window.startedAt < 2_000;
      window = { startedAt: now, frames: 0, dropped: 0, strikes: consecutive ? window!.strikes + 1 : 0 };
      this.windows.set(ws, window);
    }
    window.frames += 1;
    if (window.frames <= this.perSecond) return "ok";
    window.dropped += 1;
    return window.dropped > this.perSecond || window.strikes >= SUSTAINED_SECONDS - 1 ? "abuse" : "drop";
  }

  forget(ws: WebSocket): void {
    this.windows.delete(ws);
  }
}
