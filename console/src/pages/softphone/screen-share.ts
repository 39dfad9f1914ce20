/** What each shared frame is: at most this wide (height in proportion), JPEG at this quality, about once a second. */
export const SCREEN_FRAME = { maxWidth: 1280, quality: 0.6, everyMs: 1000, mimeType: "image/jpeg" } as const;

/**
 * The caller's screen as about one downscaled JPEG a second (base64, for `/live`'s `screen` frames, contract.md).
 * The browser asks which screen or window; `onEnded` runs when the person stops sharing from the browser's own
 * control (the track ends). A frame still being encoded when the next is due is not doubled up: that tick is skipped.
 */
export class ScreenShare {
  private timer: ReturnType<typeof setInterval> | undefined;
  private encoding = false;
  private stopped = false;

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
    this.encoding = true;
    try {
      const width = Math.min(SCREEN_FRAME.maxWidth, videoWidth);
      const height = Math.max(1, Math.round((videoHeight * width) / videoWidth));
      const canvas = new OffscreenCanvas(width, height);
      canvas.getContext("2d")?.drawImage(this.video, 0, 0, width, height);
      const blob = await canvas.convertToBlob({ type: SCREEN_FRAME.mimeType, quality: SCREEN_FRAME.quality });
      const base64 = await base64Of(blob);
      if (!this.stopped) this.onFrame(base64);
    } finally {
      this.encoding = false;
    }
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
