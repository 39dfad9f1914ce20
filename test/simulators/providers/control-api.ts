import type { IncomingMessage, ServerResponse } from "node:http";
import type { SampleEncoding } from "./audio.ts";
import { encodeAudio } from "./audio.ts";
import type { Utterance } from "./caller-audio.ts";
import { callerUtterance, upsample } from "./caller-audio.ts";
import type { ConnectionSnapshot } from "./recorder.ts";
import type { Scenario } from "./scenarios.ts";
import { ScenarioError } from "./scenarios.ts";

/**
 * The simulator's control API, for tests that cannot call it in-process (the Worker tests run inside workerd):
 *   PUT    /__sim/scenarios/:key   JSON scenario → 204 (400 with {error} when invalid)
 *   GET    /__sim/scenarios/:key   → 200 scenario, 404 when none
 *   DELETE /__sim/scenarios/:key   → 204
 *   GET    /__sim/sessions/:key    → 200 {key, connections: ConnectionSnapshot[]}
 *   DELETE /__sim/sessions/:key    → 204 (forget the recordings)
 *   POST   /__sim/sessions/:key/drop → 200 {dropped: n}: destroys the key's live connections now (no close frame),
 *          as a provider crash or network cut would
 *   GET    /__sim/audio/:name?encoding=pcmu|pcma|pcm16&rate=8000|16000|24000
 *          → 200 raw caller speech (no header; PCM16 little-endian), the utterance then a second of silence
 *          (caller-audio.ts), so Worker tests can drive provider VADs with real speech; 404 unknown name, 400 bad
 *          encoding/rate (G.711 is 8 kHz only)
 */

export interface ScenarioControl {
  /** Validates and stores; throws ScenarioError when invalid. Resets the key's refusal count. */
  setScenario(key: string, scenario: unknown): void;
  scenario(key: string): Scenario | undefined;
  clearScenario(key: string): void;
  /** Every connection (accepted or refused) recorded for the key, oldest first. */
  sessions(key: string): ConnectionSnapshot[];
  clearSessions(key: string): void;
  /** Destroys the key's live connections without a close frame; returns how many. */
  dropLive(key: string): number;
  /** Forgets every scenario and recording. */
  reset(): void;
}

const ROUTE = /^\/__sim\/(scenarios|sessions|audio)\/([^/]+)(\/drop)?$/;
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

const UTTERANCES: readonly Utterance[] = ["hello", "invoice", "interrupt", "payment", "goodbye"];
const ENCODINGS: Record<string, SampleEncoding> = { pcmu: "mulaw", pcma: "alaw", pcm16: "pcm16" };
/** The recordings are 8 kHz; higher rates are integer multiples of it. */
const UPSAMPLING_FACTORS: Record<string, number> = { "8000": 1, "16000": 2, "24000": 3 };

function serveCallerAudio(name: string, query: URLSearchParams, response: ServerResponse): void {
  const utterance = UTTERANCES.find((candidate) => candidate === name);
  if (!utterance) return reply(response, 404, { error: `no recording '${name}'; have ${UTTERANCES.join(", ")}` });
  const encodingName = query.get("encoding") ?? "pcm16";
  const encoding = ENCODINGS[encodingName];
  const rate = query.get("rate") ?? "8000";
  const factor = UPSAMPLING_FACTORS[rate];
  if (!encoding || !factor || (encoding !== "pcm16" && factor !== 1)) {
    return reply(response, 400, { error: `unsupported encoding=${encodingName} rate=${rate}` });
  }
  const samples = callerUtterance(utterance);
  const bytes = encodeAudio(factor === 1 ? samples : upsample(samples, factor), encoding);
  response.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": bytes.byteLength });
  response.end(bytes);
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
export async function handleControlRequest(control: ScenarioControl, request: IncomingMessage, response: ServerResponse): Promise<boolean> {
  const url = new URL(request.url ?? "/", "http://simulator");
  const match = ROUTE.exec(url.pathname);
  if (!match) return false;
  const [, resource, encodedKey = "", drop] = match;
  const key = decodeURIComponent(encodedKey);
  const method = request.method ?? "GET";
  if (resource === "audio") {
    if (method === "GET") serveCallerAudio(key, url.searchParams, response);
    else reply(response, 405, { error: `${method} not allowed` });
    return true;
  }
  if (drop) {
    if (resource === "sessions" && method === "POST") reply(response, 200, { dropped: control.dropLive(decodeURIComponent(encodedKey)) });
    else reply(response, 405, { error: `${method} not allowed` });
    return true;
  }
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
