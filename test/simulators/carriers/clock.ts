/**
 * Media time for one simulated call, in milliseconds since the call started. Everything a carrier paces
 * (caller frames, playback of the agent's audio, mark echoes) runs on this clock, so a `speed` factor plays the
 * whole call faster and a test can substitute a clock it advances by hand.
 */
export interface MediaClock {
  now(): number;
  /** Runs `callback` once the clock reaches `atMs`; returns a cancel function. */
  at(atMs: number, callback: () => void): () => void;
}

export function realTimeClock(speed = 1): MediaClock {
  if (!(speed > 0)) throw new Error(`speed must be positive, got ${speed}`);
  const origin = performance.now();
  const now = () => (performance.now() - origin) * speed;
  return {
    now,
    at(atMs, callback) {
      // Node may fire a timer up to a millisecond early: re-arm until the clock has really reached atMs, so
      // callbacks can rely on now() >= atMs.
      let timer: NodeJS.Timeout;
      const arm = () => {
        const remainingMs = atMs - now();
        if (remainingMs <= 0) callback();
        else timer = setTimeout(arm, Math.max(1, remainingMs / speed));
      };
      timer = setTimeout(arm, Math.max(0, (atMs - now()) / speed));
      return () => clearTimeout(timer);
    },
  };
}

export function sleepUntil(clock: MediaClock, atMs: number): Promise<void> {
  return new Promise((resolve) => clock.at(atMs, resolve));
}
