/** Audio as it travels: G.711 at 8 kHz, or little-endian PCM16 at a given rate. */
export type AudioFormat =
  | { encoding: "pcmu"; sampleRate: 8000 }
  | { encoding: "pcma"; sampleRate: 8000 }
  | { encoding: "pcm16"; sampleRate: 8000 | 16000 | 24000 };
