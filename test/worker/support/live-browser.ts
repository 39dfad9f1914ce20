import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import type { LiveEvent } from "../../../workers/shared/live-protocol.ts";
import { closeCodeOf } from "./carriers.ts";
import { randomIp } from "./identity.ts";

const opened: WebSocket[] = [];

/** Closes every browser socket a test opened (from its `afterEach`). */
export function closeLiveBrowsers(): void {
  for (const socket of opened.splice(0)) {
    try {
      socket.close(1000, "test done");
    } catch {
      // Already closed by the server.
    }
  }
}

/** A browser on a session's `/live` socket, its frames queued from the start so none is missed between awaits. */
export class LiveBrowser {
  readonly events: LiveEvent[] = [];
  /** Bytes of agent (or supervisor) audio received as binary frames. */
  audioBytes = 0;
  closeCode: number | null = null;
  readonly closed: Promise<number>;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly socket: WebSocket) {
    socket.binaryType = "arraybuffer";
    socket.accept();
    opened.push(socket);
    this.closed = closeCodeOf(socket);
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") this.events.push(JSON.parse(event.data) as LiveEvent);
      else this.audioBytes += (event.data as ArrayBuffer).byteLength;
      this.wake();
    });
    socket.addEventListener("close", (event) => {
      this.closeCode = event.code;
      this.wake();
    });
  }

  send(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  async until(test: () => boolean): Promise<void> {
    while (!test()) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  ofType<T extends LiveEvent["type"]>(type: T) {
    return this.events.filter((event): event is Extract<LiveEvent, { type: T }> => event.type === type);
  }

  /** The `count`-th event of `type`, once it has come. */
  async next<T extends LiveEvent["type"]>(type: T, count = 1): Promise<Extract<LiveEvent, { type: T }>> {
    await this.until(() => this.ofType(type).length >= count);
    return this.ofType(type)[count - 1]!;
  }

  /** A round trip: every frame sent before it has been handled by the object when the pong comes back. */
  async settled(): Promise<void> {
    const count = this.ofType("pong").length;
    this.send({ type: "ping", t: count });
    await this.next("pong", count + 1);
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
}

/** Joins the session's `/live` as `role`, with the subprotocol bearer a console uses. */
export async function joinLive(sessionId: string, token: string, role: "caller" | "supervisor"): Promise<LiveBrowser> {
  const response = await exports.default.fetch(`https://switchboard.test/api/v1/sessions/${sessionId}/live?role=${role}`, {
    headers: { Upgrade: "websocket", "CF-Connecting-IP": randomIp(), "Sec-WebSocket-Protocol": `switchboard.v1, bearer.${token}` },
  });
  expect(response.status).toBe(101);
  expect(response.headers.get("Sec-WebSocket-Protocol")).toBe("switchboard.v1");
  return new LiveBrowser(response.webSocket!);
}
