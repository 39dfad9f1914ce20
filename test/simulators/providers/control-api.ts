import type { IncomingMessage, ServerResponse } from "node:http";
import type { ConnectionSnapshot } from "./recorder.ts";
import { ScenarioError } from "./scenarios.ts";
import type { Scenario } from "./scenarios.ts";

/**
 * The simulator's control API, for tests that cannot call it in-process (the Worker tests run inside workerd):
 *   PUT    /__sim/scenarios/:key   JSON scenario → 204 (400 with {error} when invalid)
 *   GET    /__sim/scenarios/:key   → 200 scenario, 404 when none
 *   DELETE /__sim/scenarios/:key   → 204
 *   GET    /__sim/sessions/:key    → 200 {key, connections: ConnectionSnapshot[]}
 *   DELETE /__sim/sessions/:key    → 204 (forget the recordings)
 */

export interface ScenarioControl {
  /** Validates and stores; throws ScenarioError when invalid. Resets the key's refusal count. */
  setScenario(key: string, scenario: unknown): void;
  scenario(key: string): Scenario | undefined;
  clearScenario(key: string): void;
  /** Every connection (accepted or refused) recorded for the key, oldest first. */
  sessions(key: string): ConnectionSnapshot[];
  clearSessions(key: string): void;
  /** Forgets every scenario and recording. */
  reset(): void;
}

const ROUTE = /^\/__sim\/(scenarios|sessions)\/([^/]+)$/;
const MAX_BODY_BYTES = 256 * 1024;

function reply(response: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    response.writeHead(status).end();
    return;
  }
  const json = JSON.stringify(body);
  response.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(json) });
  response.end(json);
}

async function readBody(request: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.byteLength;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Handles a plain HTTP request; false when it is not a control route (the caller answers 404). */
export async function handleControlRequest(
  control: ScenarioControl,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<boolean> {
  const match = ROUTE.exec(new URL(request.url ?? "/", "http://simulator").pathname);
  if (!match) return false;
  const [, resource, encodedKey = ""] = match;
  const key = decodeURIComponent(encodedKey);
  const method = request.method ?? "GET";
  if (resource === "sessions") {
    if (method === "GET") reply(response, 200, { key, connections: control.sessions(key) });
    else if (method === "DELETE") {
      control.clearSessions(key);
      reply(response, 204);
    } else reply(response, 405, { error: `${method} not allowed` });
    return true;
  }
  if (method === "GET") {
    const scenario = control.scenario(key);
    if (scenario) reply(response, 200, scenario);
    else reply(response, 404, { error: `no scenario for key '${key}'` });
  } else if (method === "DELETE") {
    control.clearScenario(key);
    reply(response, 204);
  } else if (method === "PUT") {
    const body = await readBody(request);
    if (body === undefined) {
      reply(response, 413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
      return true;
    }
    try {
      control.setScenario(key, JSON.parse(body));
      reply(response, 204);
    } catch (error) {
      if (!(error instanceof ScenarioError || error instanceof SyntaxError)) throw error;
      reply(response, 400, { error: error.message });
    }
  } else reply(response, 405, { error: `${method} not allowed` });
  return true;
}
