import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { FormParams } from "./signing.ts";

/** HTTP plumbing shared by the fake carrier APIs and the simulators. */

export interface Reply {
  status: number;
  body?: unknown;
  contentType?: string;
  /** Runs once the reply has been written, e.g. to send the webhooks a command causes after its 200. */
  after?: () => void;
}

export interface RunningServer {
  /** Origin only, e.g. http://127.0.0.1:43125 */
  url: string;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (port 0 = any free port) and answers every request with `handler`'s reply. */
export async function startHttpServer(
  handler: (request: IncomingMessage, body: string) => Promise<Reply>,
  port = 0,
): Promise<RunningServer> {
  const server = createServer((request, response) => {
    readBody(request)
      .then((body) => handler(request, body))
      .catch((error: unknown) => ({ status: 500, body: { error: String(error) } }))
      .then((reply) => send(response, reply));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const { port: boundPort } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${boundPort}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

function send(response: ServerResponse, reply: Reply): void {
  if (reply.after) response.once("finish", reply.after);
  if (reply.body === undefined) {
    response.writeHead(reply.status).end();
    return;
  }
  const isText = typeof reply.body === "string";
  response
    .writeHead(reply.status, { "Content-Type": reply.contentType ?? (isText ? "text/plain" : "application/json") })
    .end(isText ? reply.body : JSON.stringify(reply.body));
}

/** Form decoding that keeps repeated keys (Twilio sends `StatusCallbackEvent` once per event). */
export function parseForm(text: string): FormParams {
  const params: FormParams = {};
  for (const [name, value] of new URLSearchParams(text)) {
    const existing = params[name];
    if (existing === undefined) params[name] = value;
    else params[name] = [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return params;
}

export function encodeForm(params: FormParams): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, item);
  }
  return search.toString();
}

/** A single value of a form field (the first, when repeated). */
export function formValue(params: FormParams, name: string): string | undefined {
  const value = params[name];
  return Array.isArray(value) ? value[0] : value;
}

export function formValues(params: FormParams, name: string): string[] {
  const value = params[name];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/**
 * The platform names itself by its public origin (webhook and stream URLs); the simulator may only reach it at
 * another address (localhost). Keep the path and query, take scheme/host/port from `reachableBase`, and map
 * http→ws / https→wss for WebSocket URLs.
 */
export function rewriteOrigin(publicUrl: string, reachableBase: string): string {
  const target = new URL(publicUrl);
  const base = new URL(reachableBase);
  const isWebSocket = target.protocol === "ws:" || target.protocol === "wss:";
  target.protocol = isWebSocket ? (base.protocol === "https:" ? "wss:" : "ws:") : base.protocol;
  target.host = base.host;
  return target.toString();
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function headerValue(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** RFC 2822 date as Twilio writes it: `Tue, 14 Nov 2023 22:13:20 +0000`. */
export function rfc2822(date: Date): string {
  return date.toUTCString().replace("GMT", "+0000");
}
