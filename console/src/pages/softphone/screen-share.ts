/**
 * What each shared frame is: at most this wide (height in proportion), JPEG at this quality, a frame every 1.2 s — the
 * platform takes at most one a second and a one-second timer's jitter would put two in some seconds (README "Live
 * sessions"). `minGapMs` holds that even when timers bunch up after the tab was busy.
 */
export const SCREEN_FRAME = { maxWidth: 1280, quality: 0.6, everyMs: 1200, minGapMs: 1050, mimeType: "image/jpeg" } as const;
/**
 * The largest `screen` text frame the platform accepts (MAX_SCREEN_FRAME_BYTES in workers/shared/live-protocol.ts;
 * a value import from there would pull zod into the console's bundle). The JSON around the base64 is counted too.
 */
const MAX_FRAME_CHARS = 256 * 1024 - 64;
/** A frame too big at the usual size and quality is encoded again smaller, then dropped if still too big. */
const ENCODINGS = [
  { scale: 1, quality: SCREEN_FRAME.quality },
  { scale: 1, quality: 0.4 },
  { scale: 0.5, quality: 0.5 },
] as const;

/**
 * The caller's screen as a downscaled JPEG about once a second (base64, for `/live`'s `screen` frames, contract.md).
 * The browser asks which screen or window; `onEnded` runs when the person stops sharing from the browser's own
 * control (the track ends). A frame still being encoded when the next is due is not doubled up: that tick is skipped.
 */
export class ScreenShare {
  private timer: ReturnType<typeof setInterval> | undefined;
  private encoding = false;
  private stopped = false;
  private lastSentAt = Number.NEGATIVE_INFINITY;

  private constructor(
    private readonly stream: MediaStream,
    private readonly video: HTMLVideoElement,
    private readonly onFrame: (base64: string) => void,
  ) {}

  /** Asks for a screen (call it from a user gesture); throws the browser's error if refused. */
  static async start(onFrame: (base64: string) => void, onEnded: () => void): Promise<ScreenShare> {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 5 }, audio: false });
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.srcObject = stream;
    const share = new ScreenShare(stream, video, onFrame);
    try {
      await video.play();
    } catch (error) {
      share.stop();
      throw error;
    }
    for (const track of stream.getVideoTracks()) {
      track.addEventListener("ended", () => {
        if (share.stopped) return;
        share.stop();
        onEnded();
      });
    }
    void share.capture();
    share.timer = setInterval(() => void share.capture(), SCREEN_FRAME.everyMs);
    return share;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const track of this.stream.getTracks()) track.stop();
    this.video.srcObject = null;
  }

  private async capture(): Promise<void> {
    const { videoWidth, videoHeight } = this.video;
    if (this.encoding || this.stopped || videoWidth === 0 || videoHeight === 0) return;
    if (performance.now() - this.lastSentAt < SCREEN_FRAME.minGapMs) return;
    this.encoding = true;
    try {
      const base64 = await this.encode(videoWidth, videoHeight);
      if (base64 === null || this.stopped) return;
      this.lastSentAt = performance.now();
      this.onFrame(base64);
    } finally {
      this.encoding = false;
    }
  }

  /** The current picture as base64 JPEG within the platform's frame size, or null if it cannot be made to fit. */
  private async encode(videoWidth: number, videoHeight: number): Promise<string | null> {
    for (const { scale, quality } of ENCODINGS) {
      const width = Math.max(1, Math.round(Math.min(SCREEN_FRAME.maxWidth, videoWidth) * scale));
      const height = Math.max(1, Math.round((videoHeight * width) / videoWidth));
      const canvas = new OffscreenCanvas(width, height);
      canvas.getContext("2d")?.drawImage(this.video, 0, 0, width, height);
      const base64 = await base64Of(await canvas.convertToBlob({ type: SCREEN_FRAME.mimeType, quality }));
      if (base64.length <= MAX_FRAME_CHARS) return base64;
    }
    return null;
  }
}

function base64Of(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).slice(String(reader.result).indexOf(",") + 1));
    reader.onerror = () => reject(reader.error ?? new Error("could not read the frame"));
    reader.readAsDataURL(blob);
  });
}
