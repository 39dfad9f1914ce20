import { EventEmitter } from "node:events";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import type { Reply } from "./http.ts";
import { isRecord } from "./media-dialect.ts";

/**
 * A stand-in for the platform's side of the carrier protocols, for testing the simulators without the Worker:
 * answers HTTP with whatever the test decides, accepts media WebSockets on any path, and records everything.
 * Tests play the platform's role through the handlers (answer TwiML, send media/mark/clear).
 */
export interface PeerRequest {
  method: string;
  /** Path and query. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface PeerSocket {
  url: string;
  headers: IncomingHttpHeaders;
  /** JSON messages received, in arrival order. */
  messages: Record<string, unknown>[];
  binaryFrames: number;
  closed: boolean;
  send(message: unknown): void;
  close(): void;
}

export interface PlatformPeerHandlers {
  http?: (request: PeerRequest) => Reply | Promise<Reply>;
  /** Called for every JSON message, after it was recorded. */
  message?: (socket: PeerSocket, message: Record<string, unknown>) => void;
  /** Refuse the upgrade with this status instead of accepting it. */
  refuseUpgrade?: (request: IncomingMessage) => number | undefined;
}

export interface PlatformPeer {
  url: string;
  requests: PeerRequest[];
  sockets: PeerSocket[];
  handlers: PlatformPeerHandlers;
  /** Resolves with the predicate's first non-undefined result, re-checked whenever the peer records something. */
  waitFor<T>(what: string, predicate: () => T | undefined, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

export async function startPlatformPeer(handlers: PlatformPeerHandlers = {}): Promise<PlatformPeer> {
  const changes = new EventEmitter();
  const requests: PeerRequest[] = [];
  const sockets: PeerSocket[] = [];
  const liveSockets = new Set<WebSocket>();
  const peer: Pick<PlatformPeer, "handlers"> = { handlers };

  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const recorded: PeerRequest = {
        method: request.method ?? "GET",
        url: request.url ?? "/",
        headers: request.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(recorded);
      changes.emit("change");
      Promise.resolve(peer.handlers.http?.(recorded) ?? { status: 200 })
        .catch((error: unknown): Reply => ({ status: 500, body: String(error) }))
        .then((reply) => {
          const body = reply.body === undefined ? "" : typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body);
          response.writeHead(reply.status, { "Content-Type": reply.contentType ?? "text/plain" }).end(body);
        });
    });
  });
  const webSockets = new WebSocketServer({ noServer: true });
  server.on("upgrade", (request, socket, head) => {
    const refusal = peer.handlers.refuseUpgrade?.(request);
    if (refusal !== undefined) {
      socket.end(`HTTP/1.1 ${refusal} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    webSockets.handleUpgrade(request, socket, head, (ws) => {
      liveSockets.add(ws);
      const recorded: PeerSocket = {
        url: request.url ?? "/",
        headers: request.headers,
        messages: [],
        binaryFrames: 0,
        closed: false,
        send: (message) => ws.send(JSON.stringify(message)),
        close: () => ws.close(1000),
      };
      sockets.push(recorded);
      changes.emit("change");
      ws.on("message", (data, isBinary) => {
        if (isBinary) recorded.binaryFrames++;
        else {
          const message: unknown = JSON.parse(data.toString());
          if (isRecord(message)) {
            recorded.messages.push(message);
            peer.handlers.message?.(recorded, message);
          }
        }
        changes.emit("change");
      });
      ws.on("close", () => {
        recorded.closed = true;
        liveSockets.delete(ws);
        changes.emit("change");
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    sockets,
    get handlers() {
      return peer.handlers;
    },
    set handlers(value) {
      peer.handlers = value;
    },
    waitFor<T>(what: string, predicate: () => T | undefined, timeoutMs = 15_000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const check = () => {
          const result = predicate();
          if (result === undefined) return;
          cleanup();
          resolve(result);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${what}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          changes.off("change", check);
        };
        changes.on("change", check);
        check();
      });
    },
    async stop() {
      for (const ws of liveSockets) ws.terminate();
      await new Promise<void>((resolve) => webSockets.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
