import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { createServer, STATUS_CODES } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { WebSocketServer } from "ws";
import type { SimulatorSettings } from "./connection.ts";
import { ProviderConnection } from "./connection.ts";
import type { ScenarioControl } from "./control-api.ts";
import { handleControlRequest } from "./control-api.ts";
import { DeepgramAgentSession } from "./deepgram-agent.ts";
import { GeminiLiveSession, ResumptionStore } from "./gemini-live.ts";
import { OpenAiRealtimeSession } from "./openai-realtime.ts";
import type { ProviderName } from "./recorder.ts";
import { ConnectionRecorder, SessionStore } from "./recorder.ts";
import { DEFAULT_KEY, parseScenario, ScenarioRegistry } from "./scenarios.ts";
import type { VadSettings } from "./vad.ts";
import { DEFAULT_VAD_SETTINGS } from "./vad.ts";

/**
 * Simulated OpenAI Realtime, Gemini Live and Deepgram Voice Agent endpoints on one local HTTP server, speaking
 * the real wire protocols, with per-correlation-id scenarios (scripted turns, tool calls, faults) and a record
 * of every connection for assertions and latency measurements. See control-api.ts for the HTTP control API.
 */

export type { ScenarioControl } from "./control-api.ts";
export type { ConnectionSnapshot, ProviderName } from "./recorder.ts";
export type { Scenario, ScenarioInput } from "./scenarios.ts";

export interface ProviderSimulatorOptions {
  /** Interface to bind; 127.0.0.1 unless a test needs otherwise. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** API keys the endpoints accept; random per simulator by default. */
  apiKeys?: Partial<Record<ProviderName, string>>;
  /** Agent audio per message, default 40 ms. */
  audioChunkMs?: number;
  /** Agent audio is sent this many times faster than real time, default 4. */
  speedFactor?: number;
  /** Model "thinking" time before the first output of a response, default 150 ms. */
  responseDelayMs?: number;
  vad?: Partial<VadSettings>;
  /** Deepgram's idle close, default 10 s. */
  deepgramIdleTimeoutMs?: number;
  /** Gemini: delay between `goAway` and the close (and its `timeLeft`), default 5 s. */
  geminiGoAwayGraceMs?: number;
  /** Larger client messages close the connection with 1009; default 1 MiB. */
  maxMessageBytes?: number;
  /** Bound of every recorded list per connection, default 2000. */
  maxRecordedEntries?: number;
}

export interface ProviderSimulator {
  /** http://127.0.0.1:<port>: the control API lives under /__sim. */
  baseHttpUrl: string;
  /** ws:// endpoint URLs without credentials (OpenAI takes `?model=`, Gemini `?key=`). */
  urls: Record<ProviderName, string>;
  apiKeys: Record<ProviderName, string>;
  control: ScenarioControl;
  stop(): Promise<void>;
}

const GEMINI_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";
const PATHS: Record<string, ProviderName> = {
  "/v1/realtime": "openai",
  [GEMINI_PATH]: "gemini",
  [GEMINI_PATH.replace("v1beta", "v1alpha")]: "gemini",
  "/v1/agent/converse": "deepgram",
};
const ENDPOINTS: Record<ProviderName, string> = {
  openai: "/v1/realtime",
  gemini: GEMINI_PATH,
  deepgram: "/v1/agent/converse",
};
/** Headers recorded for assertions; credentials among them are reduced to their scheme. */
const RECORDED_HEADERS = ["x-correlation-id", "user-agent", "openai-beta", "sec-websocket-protocol", "x-goog-api-client"];

function isAuthorized(provider: ProviderName, request: IncomingMessage, url: URL, key: string): boolean {
  if (provider === "openai") return request.headers.authorization === `Bearer ${key}`;
  if (provider === "deepgram") return request.headers.authorization === `Token ${key}`;
  return url.searchParams.get("key") === key || request.headers["x-goog-api-key"] === key;
}

const REFUSAL_MESSAGES: Record<number, string> = {
  401: "Invalid API key.",
  429: "Rate limit exceeded.",
  503: "Service unavailable.",
};

/** The error body each service answers a refused upgrade with. */
function refusalBody(provider: ProviderName, status: number): object {
  const message = REFUSAL_MESSAGES[status] ?? "Internal error.";
  if (provider === "openai") {
    const code = status === 401 ? "invalid_api_key" : status === 429 ? "rate_limit_exceeded" : "server_error";
    return { error: { message, type: status === 401 ? "invalid_request_error" : code, code, param: null } };
  }
  if (provider === "gemini") {
    const grpcStatus = { 401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE" }[status] ?? "INTERNAL";
    return { error: { code: status, message, status: grpcStatus } };
  }
  const errCode = { 401: "INVALID_AUTH", 429: "TOO_MANY_REQUESTS", 503: "SERVICE_UNAVAILABLE" }[status] ?? "INTERNAL_SERVER_ERROR";
  return { err_code: errCode, err_msg: message, request_id: crypto.randomUUID() };
}

function refuse(socket: Socket, provider: ProviderName, status: number): void {
  const body = JSON.stringify(refusalBody(provider, status));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function recordedHeaders(request: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of RECORDED_HEADERS) {
    const value = request.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  const scheme = request.headers.authorization?.split(" ")[0];
  if (scheme) headers.authorization = `${scheme} [redacted]`;
  if (request.headers["x-goog-api-key"]) headers["x-goog-api-key"] = "[redacted]";
  return headers;
}

function recordedQuery(url: URL): Record<string, string> {
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) query[name] = name === "key" ? "[redacted]" : value;
  return query;
}

export async function startProviderSimulator(options: ProviderSimulatorOptions = {}): Promise<ProviderSimulator> {
  const apiKeys: Record<ProviderName, string> = {
    openai: options.apiKeys?.openai ?? `sk-sim-${randomBytes(12).toString("hex")}`,
    gemini: options.apiKeys?.gemini ?? `AIzaSim${randomBytes(12).toString("hex")}`,
    deepgram: options.apiKeys?.deepgram ?? `dg-sim-${randomBytes(12).toString("hex")}`,
  };
  const settings: SimulatorSettings = {
    audioChunkMs: options.audioChunkMs ?? 40,
    speedFactor: options.speedFactor ?? 4,
    responseDelayMs: options.responseDelayMs ?? 150,
    vad: { ...DEFAULT_VAD_SETTINGS, ...options.vad },
    deepgramIdleTimeoutMs: options.deepgramIdleTimeoutMs ?? 10_000,
    geminiGoAwayGraceMs: options.geminiGoAwayGraceMs ?? 5_000,
  };
  const maxRecordedEntries = options.maxRecordedEntries ?? 2000;
  const scenarios = new ScenarioRegistry();
  const sessions = new SessionStore();
  const resumptions = new ResumptionStore();
  const live = new Set<ProviderConnection>();
  let connectionCount = 0;

  const control: ScenarioControl = {
    setScenario: (key, scenario) => scenarios.set(key, parseScenario(scenario)),
    scenario: (key) => scenarios.get(key),
    clearScenario: (key) => scenarios.delete(key),
    sessions: (key) => sessions.snapshots(key),
    clearSessions: (key) => sessions.delete(key),
    dropLive: (key) => {
      const victims = [...live].filter((connection) => connection.recorder.key === key);
      for (const connection of victims) connection.drop();
      return victims.length;
    },
    reset: () => {
      scenarios.clear();
      sessions.clear();
    },
  };

  const server = createServer((request, response) => {
    handleControlRequest(control, request, response)
      .then((handled) => {
        if (!handled) response.writeHead(404, { "Content-Type": "application/json" }).end('{"error":"not found"}');
      })
      .catch((error: unknown) => {
        if (!response.headersSent) response.writeHead(500).end(String(error));
      });
  });
  const webSockets = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes ?? 1024 * 1024 });

  server.on("upgrade", (request: IncomingMessage, socket: Socket, head: Buffer) => {
    const url = new URL(request.url ?? "/", "http://simulator");
    const provider = PATHS[url.pathname];
    if (!provider) {
      socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    const correlationId = request.headers["x-correlation-id"];
    const key = typeof correlationId === "string" && correlationId ? correlationId : DEFAULT_KEY;
    // A scenario under `<key>#<provider>` applies to that provider's connections only (a failover test fails one).
    const providerKey = `${key}#${provider}`;
    const decision = isAuthorized(provider, request, url, apiKeys[provider])
      ? scenarios.decideUpgrade(scenarios.get(providerKey) ? providerKey : key)
      : ({ accept: false, status: 401 } as const);
    const recorder = new ConnectionRecorder({
      id: `conn-${++connectionCount}`,
      provider,
      key,
      path: url.pathname,
      query: recordedQuery(url),
      headers: recordedHeaders(request),
      refusedWithStatus: decision.accept ? null : decision.status,
      maxEntries: maxRecordedEntries,
    });
    sessions.add(recorder);
    if (!decision.accept) {
      recorder.closedAt = recorder.connectedAt;
      refuse(socket, provider, decision.status);
      return;
    }
    const delay = decision.scenario.upgradeDelayMs ?? 0;
    const answer = () =>
      webSockets.handleUpgrade(request, socket, head, (socket) => {
        const connection = new ProviderConnection(socket, recorder, decision.scenario, settings);
        live.add(connection);
        connection.onEnd(() => live.delete(connection));
        const session =
          provider === "openai"
            ? new OpenAiRealtimeSession(connection, url.searchParams.get("model"), url.searchParams.get("intent"))
            : provider === "gemini"
              ? new GeminiLiveSession(connection, resumptions)
              : new DeepgramAgentSession(connection);
        session.start();
      });
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(":") ? `[${address}]` : address;
  const wsUrl = (provider: ProviderName) => `ws://${host}:${port}${ENDPOINTS[provider]}`;

  return {
    baseHttpUrl: `http://${host}:${port}`,
    urls: { openai: wsUrl("openai"), gemini: wsUrl("gemini"), deepgram: wsUrl("deepgram") },
    apiKeys,
    control,
    async stop() {
      for (const connection of live) connection.drop();
      webSockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}

/** The Worker settings that point the platform at this simulator (see test/support/global-setup.ts). */
export function providerSimulatorSettings(simulator: ProviderSimulator): Record<string, string> {
  return {
    OPENAI_REALTIME_URL: simulator.urls.openai,
    OPENAI_API_KEY: simulator.apiKeys.openai,
    GEMINI_LIVE_URL: simulator.urls.gemini,
    GEMINI_API_KEY: simulator.apiKeys.gemini,
    DEEPGRAM_AGENT_URL: simulator.urls.deepgram,
    DEEPGRAM_API_KEY: simulator.apiKeys.deepgram,
    PROVIDER_SIM_CONTROL_URL: simulator.baseHttpUrl,
  };
}
