import type { ProviderName } from "../../workers/shared/settings.ts";
import type { LiveSockets } from "../live/live-sockets.ts";
import type { CallerChannel } from "./caller-channel.ts";
import { BROWSER_AUDIO_FORMAT, browserLeg, type WebSessionStore } from "./web-session.ts";

interface WebChannelParts {
  env: Env;
  web: WebSessionStore;
  live: LiveSockets;
  /** Ends the session: closes the conversation and the sockets, marks it ended in D1. */
  end(reason: string): Promise<void>;
  waitUntil(task: Promise<unknown>): void;
}

/** A web session's caller: a browser on /live. Only used while the object holds a web session's record. */
export function webChannel(parts: WebChannelParts): CallerChannel {
  const record = () => parts.web.record!;
  const leg = browserLeg(parts.live);
  return {
    identity() {
      const web = record();
      return {
        channel: "web",
        sessionId: web.sessionId,
        tenantId: web.tenantId,
        provider: web.provider,
        instructions: web.instructions,
        prompt: web.prompt ?? null,
        metadata: { channel: "web", ...web.metadata },
        correlationId: web.correlationId,
        ended: web.status === "ended",
        remoteNumber: null,
      };
    },
    callAudio: BROWSER_AUDIO_FORMAT,
    leg: () => (parts.live.hasCaller() ? leg : null),
    hangup: (reason) => parts.end(reason),
    transfer: async () => JSON.stringify({ ok: false, error: "A web session cannot be transferred to a phone agent." }),
    providerChanged(provider: ProviderName) {
      parts.web.providerChanged(provider);
      parts.waitUntil(parts.web.syncToD1(parts.env));
    },
  };
}
