import WebSocket from "ws";
import { isRecord, rawDataBytes } from "./wire.ts";

/**
 * A plain `ws` client for driving the simulated providers in tests: it keeps every message it receives, in
 * order, and lets a test wait for the next one that matches. Waiting on a socket that has closed fails at once
 * instead of hanging until the test times out.
 */

export type Received = { kind: "json"; message: Record<string, unknown>; binaryFrame: boolean } | { kind: "audio"; bytes: Buffer };

type JsonMessage = Record<string, unknown>;

export interface CloseInfo {
  code: number;
  reason: string;
}

export class UpgradeRefused extends Error {
  override readonly name = "UpgradeRefused";
  readonly status: number;
  readonly body: string;

  constructor(status: number, body: string) {
    super(`upgrade refused with HTTP ${status}: ${body}`);
    this.status = status;
    this.body = body;
  }
}

interface Waiter {
  matches: (received: Received) => boolean;
  from: number;
  resolve: (index: number) => void;
  reject: (error: Error) => void;
  description: string;
}

export class ProviderTestClient {
  readonly received: Received[] = [];
  /** `performance.now()` at which each entry of `received` arrived. */
  readonly receivedAt: number[] = [];
  readonly closed: Promise<CloseInfo>;
  readonly #socket: WebSocket;
  #waiters: Waiter[] = [];
  #closeInfo: CloseInfo | undefined;

  private constructor(socket: WebSocket, binaryIsJson: boolean) {
    this.#socket = socket;
    socket.on("message", (data, isBinary) => {
      const bytes = rawDataBytes(data);
      if (isBinary && !binaryIsJson) this.#push({ kind: "audio", bytes });
      else {
        const message: unknown = JSON.parse(bytes.toString("utf8"));
        if (!isRecord(message)) throw new Error(`non-object JSON message: ${bytes.toString("utf8")}`);
        this.#push({ kind: "json", message, binaryFrame: isBinary });
      }
    });
    this.closed = new Promise((resolve) => {
      socket.on("close", (code, reason) => {
        this.#closeInfo = { code, reason: reason.toString() };
        for (const waiter of this.#waiters) {
          waiter.reject(new Error(`socket closed (${code} ${reason.toString()}) before ${waiter.description}`));
        }
        this.#waiters = [];
        resolve(this.#closeInfo);
      });
    });
  }

  /** Opens a connection; rejects with UpgradeRefused when the server answers the upgrade with an HTTP error. */
  static connect(url: string, headers: Record<string, string>, options: { binaryIsJson?: boolean } = {}): Promise<ProviderTestClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { headers });
      const client = new ProviderTestClient(socket, options.binaryIsJson ?? false);
      socket.once("open", () => resolve(client));
      socket.once("error", reject);
      socket.once("unexpected-response", (_request, response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          reject(new UpgradeRefused(response.statusCode ?? 0, Buffer.concat(chunks).toString("utf8")));
          socket.terminate();
        });
      });
    });
  }

  sendJson(message: unknown): void {
    this.#socket.send(JSON.stringify(message));
  }

  sendRaw(data: string | Uint8Array): void {
    this.#socket.send(data);
  }

  /** Index of the first message at or after `from` that matches; waits for it if it has not arrived yet. */
  waitFor(description: string, matches: (received: Received) => boolean, from = 0): Promise<number> {
    const index = this.received.findIndex((received, i) => i >= from && matches(received));
    if (index >= 0) return Promise.resolve(index);
    if (this.#closeInfo) return Promise.reject(new Error(`socket already closed before ${description}`));
    return new Promise((resolve, reject) => this.#waiters.push({ matches, from, resolve, reject, description }));
  }

  /**
   * Waits for a JSON message whose `field` equals `value`: `type` for OpenAI and Deepgram; the pseudo-field
   * `key` matches a Gemini message's top-level key (`setupComplete`, `toolCall`, …).
   */
  async waitForJson(field: string, value: string, from = 0): Promise<{ index: number; message: JsonMessage }> {
    const index = await this.waitFor(`${field}=${value}`, (received) => jsonField(received, field) === value, from);
    const received = this.received[index];
    if (received?.kind !== "json") throw new Error("unreachable: matched a non-JSON message");
    return { index, message: received.message };
  }

  /** JSON messages received so far, in order. */
  json(): Array<Record<string, unknown>> {
    return this.received.flatMap((received) => (received.kind === "json" ? [received.message] : []));
  }

  async close(): Promise<CloseInfo> {
    if (!this.#closeInfo) this.#socket.close(1000);
    return this.closed;
  }

  #push(received: Received): void {
    const index = this.received.push(received) - 1;
    this.receivedAt.push(performance.now());
    this.#waiters = this.#waiters.filter((waiter) => {
      if (index < waiter.from || !waiter.matches(received)) return true;
      waiter.resolve(index);
      return false;
    });
  }
}

function jsonField(received: Received, field: string): unknown {
  if (received.kind !== "json") return undefined;
  return field === "key" ? Object.keys(received.message)[0] : received.message[field];
}
