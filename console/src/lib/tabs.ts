import type { Tokens } from "./auth.svelte.ts";

/**
 * The console's tabs talk over one BroadcastChannel: sign-in, refresh and logout (auth.svelte.ts), and session events
 * (a softphone call started or ended in one tab shows in the others' lists). A message is never echoed to its sender.
 */
export type TabMessage =
  | { type: "auth.ask" }
  | { type: "auth.tokens"; tokens: Tokens }
  | { type: "auth.logout"; reason: string | null }
  | { type: "session.changed"; sessionId: string };

type Listener = (message: TabMessage) => void;

class Tabs {
  private readonly channel = typeof BroadcastChannel === "undefined" ? null : new BroadcastChannel("switchboard");
  private readonly listeners = new Set<Listener>();

  constructor() {
    this.channel?.addEventListener("message", (event: MessageEvent<TabMessage>) => {
      for (const listener of this.listeners) listener(event.data);
    });
  }

  post(message: TabMessage): void {
    this.channel?.postMessage(message);
  }

  /** Returns the function that stops listening. */
  listen(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export const tabs = new Tabs();
