import { type LiveCapabilities, type LiveEvent, VISION_UNSUPPORTED } from "../../workers/shared/live-protocol.ts";
import type { ProviderName } from "../../workers/shared/settings.ts";
import type { ImageFrame } from "../voice/providers/provider.ts";
import { ACCEPTS_IMAGES } from "../voice/providers/registry.ts";
import type { VoiceSession } from "../voice/voice-session.ts";

export interface ScreenShareHost {
  /** The session's conversation (created on need); null once the session has ended. */
  voice(): VoiceSession | null;
  /** An event for the web session's caller only. */
  toCaller(event: LiveEvent): void;
  /** An event for every browser on the session (the caller and the supervisors). */
  broadcast(event: LiveEvent): void;
}

/**
 * A web caller's shared screen, past the socket's checks (live-sockets.ts: the caller's only, one a second, a real
 * JPEG or PNG): each frame goes straight to the provider if it sees images, and is neither stored nor logged. A caller
 * whose frames cannot reach the agent because its provider has no vision is told so once per such provider.
 */
export class ScreenShare {
  /** The provider the caller was last told cannot see its screen (in memory: a woken object may tell it again). */
  private toldBlind: ProviderName | null = null;

  constructor(private readonly host: ScreenShareHost) {}

  /** What a `/live` greeting says: only a web session has a caller that can share a screen. */
  static capabilities(channel: "phone" | "web", provider: ProviderName): LiveCapabilities {
    return { vision: channel === "web" && ACCEPTS_IMAGES[provider] };
  }

  frame(image: ImageFrame): void {
    const voice = this.host.voice();
    if (!voice || voice.sendImage(image)) return;
    // Not connected right now (dialling, reconnecting): dropped silently, the next frame may get through.
    const provider = voice.currentProvider;
    if (ACCEPTS_IMAGES[provider] || this.toldBlind === provider) return;
    this.toldBlind = provider;
    this.host.toCaller({
      type: "error",
      code: VISION_UNSUPPORTED,
      message: `The agent's current provider (${provider}) cannot see images: screen frames are not passed on`,
    });
  }

  /** After a switch or a failover every browser learns what the new provider can take. */
  providerChanged(channel: "phone" | "web", provider: ProviderName): void {
    this.host.broadcast({ type: "capabilities", provider, capabilities: ScreenShare.capabilities(channel, provider), at: Date.now() });
  }
}
