import { readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { readWav } from "./audio.ts";
import { parseJson, type Reply } from "./http.ts";
import { isRecord } from "./media-dialect.ts";

/**
 * Shared state of the fake carrier APIs that tests steer: injected faults, the log of requests received, how
 * dialled numbers behave, and where the platform is (for calls the fakes drive back into it). Reachable in
 * process and over HTTP (`/__sim/...`) because platform tests run inside workerd and only have fetch.
 * Faults and callee behaviours are keyed by dialled number or call id so parallel tests do not collide.
 */

export type Carrier = "twilio" | "telnyx";

export interface FaultMatch {
  /** The dialled number (outbound create/dial), or the `to` of the call an action targets. */
  to?: string;
  /** Twilio CallSid or Telnyx call_control_id. */
  callId?: string;
  /** Substring of the request path, e.g. `/actions/hangup` or `/Calls.json`. */
  path?: string;
}

export interface FaultSpec {
  match: FaultMatch;
  /** Answer with this status instead of handling the request (omit to only delay it). */
  status?: number;
  /** Replace the carrier-style error body. */
  body?: unknown;
  /** How many matching requests it applies to; absent = until cleared. */
  times?: number;
  /** Hold the response this long first. */
  delayMs?: number;
}

export interface RecordedRequest {
  carrier: Carrier;
  method: string;
  path: string;
  query: Record<string, string>;
  /** Every header except `authorization`. */
  headers: Record<string, string>;
  /** Form fields (Twilio), parsed JSON (Telnyx), or the raw text when neither parses. */
  body: unknown;
  /** ISO 8601 time of arrival. */
  time: string;
  callId?: string;
  to?: string;
  /** The status the fake answered with (set once answered). */
  status?: number;
  /** The fault that shaped the answer, if one matched. */
  fault?: FaultSpec;
  /** What the fake made of it when that is not obvious (e.g. a duplicate command_id it ignored). */
  note?: string;
}

export type CallOutcome = "answer" | "busy" | "no-answer" | "failed";

/** How a number the platform dials behaves when a fake drives the call. */
export interface CalleeBehaviour {
  outcome: CallOutcome;
  /** Ringing time before the outcome. Default 100 ms. */
  answerDelayMs?: number;
  /** What the callee says once the stream is up (8 kHz PCM16); silence when absent. */
  utterances?: Int16Array[];
  /** The callee hangs up this long after answering; absent = when the platform hangs up (or the leg cap). */
  hangUpAfterMs?: number;
  /** What answers, as the carrier's answering-machine detection (when asked for) will find. Default a person. */
  answeredBy?: Answerer;
}

export type Answerer = "human" | "machine" | "fax";
const ANSWERERS: readonly Answerer[] = ["human", "machine", "fax"];

export interface PlatformTarget {
  /** Where this process reaches the platform, e.g. http://127.0.0.1:8787 */
  baseUrl: string;
  /** The origin the platform believes it has (PUBLIC_BASE_URL); signatures are computed over it. Default baseUrl. */
  publicBaseUrl?: string;
}

export class SimulatorControl {
  #faults: Array<FaultSpec & { remaining: number }> = [];
  readonly #requests: RecordedRequest[] = [];
  readonly #callees = new Map<string, CalleeBehaviour>();
  readonly #numbersNotOnAccount = new Set<string>();
  #platform: PlatformTarget | undefined;

  addFault(fault: FaultSpec): void {
    this.#faults.push({ ...fault, remaining: fault.times ?? Number.POSITIVE_INFINITY });
  }

  /** Removes the faults whose match has every given key equal (all faults when no key is given). */
  clearFaults(filter: FaultMatch = {}): void {
    this.#faults = this.#faults.filter((fault) => !matchesFilter(fault.match, filter));
  }

  /** The first live fault matching the request, consuming one of its uses. */
  takeFault(request: { to?: string; callId?: string; path: string }): FaultSpec | undefined {
    const fault = this.#faults.find(
      (candidate) =>
        candidate.remaining > 0 &&
        (candidate.match.to === undefined || candidate.match.to === request.to) &&
        (candidate.match.callId === undefined || candidate.match.callId === request.callId) &&
        (candidate.match.path === undefined || request.path.includes(candidate.match.path)),
    );
    if (!fault) return undefined;
    fault.remaining--;
    const { remaining: _remaining, ...spec } = fault;
    return spec;
  }

  record(request: RecordedRequest): RecordedRequest {
    this.#requests.push(request);
    return request;
  }

  requests(filter: { carrier?: Carrier; callId?: string; to?: string; path?: string } = {}): RecordedRequest[] {
    return this.#requests.filter(
      (request) =>
        (filter.carrier === undefined || request.carrier === filter.carrier) &&
        (filter.callId === undefined || request.callId === filter.callId) &&
        (filter.to === undefined || request.to === filter.to) &&
        (filter.path === undefined || request.path.includes(filter.path)),
    );
  }

  setCallee(to: string, behaviour: CalleeBehaviour): void {
    this.#callees.set(to, behaviour);
  }

  /** Numbers nobody configured answer and stay silent. */
  callee(to: string): CalleeBehaviour {
    return this.#callees.get(to) ?? { outcome: "answer" };
  }

  /** Whether the account holds `e164` (both fakes' number lookups): every number does unless a test said otherwise. */
  setNumberOnAccount(e164: string, onAccount: boolean): void {
    if (onAccount) this.#numbersNotOnAccount.delete(e164);
    else this.#numbersNotOnAccount.add(e164);
  }

  numberOnAccount(e164: string): boolean {
    return !this.#numbersNotOnAccount.has(e164);
  }

  setPlatform(platform: PlatformTarget | undefined): void {
    this.#platform = platform;
  }

  get platform(): PlatformTarget | undefined {
    return this.#platform;
  }

  /**
   * `/__sim/...` over HTTP:
   * PUT /__sim/faults {match, status?, times?, delayMs?, body?} · DELETE /__sim/faults[?to=&callId=&path=] ·
   * GET /__sim/requests[?carrier=&callId=&to=&path=] ·
   * PUT /__sim/callees {to, outcome, answerDelayMs?, hangUpAfterMs?, audioFile?, answeredBy?} ·
   * PUT /__sim/numbers {e164, onAccount} ·
   * PUT /__sim/platform {baseUrl, publicBaseUrl?}
   */
  async handle(request: IncomingMessage, rawBody: string): Promise<Reply> {
    const url = new URL(request.url ?? "/", "http://sim");
    const query = Object.fromEntries(url.searchParams);
    const route = `${request.method} ${url.pathname}`;
    const body = parseJson(rawBody);
    switch (route) {
      case "PUT /__sim/faults": {
        const fault = parseFault(body);
        if (typeof fault === "string") return { status: 400, body: { error: fault } };
        this.addFault(fault);
        return { status: 204 };
      }
      case "DELETE /__sim/faults":
        this.clearFaults(query);
        return { status: 204 };
      case "GET /__sim/requests":
        return { status: 200, body: this.requests(query) };
      case "PUT /__sim/callees": {
        const callee = await parseCallee(body);
        if (typeof callee === "string") return { status: 400, body: { error: callee } };
        this.setCallee(callee.to, callee.behaviour);
        return { status: 204 };
      }
      case "PUT /__sim/numbers": {
        if (!isRecord(body) || typeof body.e164 !== "string" || typeof body.onAccount !== "boolean") {
          return { status: 400, body: { error: "expected {e164, onAccount}" } };
        }
        this.setNumberOnAccount(body.e164, body.onAccount);
        return { status: 204 };
      }
      case "PUT /__sim/platform": {
        if (!isRecord(body) || typeof body.baseUrl !== "string") return { status: 400, body: { error: "baseUrl required" } };
        const publicBaseUrl = typeof body.publicBaseUrl === "string" ? body.publicBaseUrl : undefined;
        this.setPlatform({ baseUrl: body.baseUrl, ...(publicBaseUrl ? { publicBaseUrl } : {}) });
        return { status: 204 };
      }
      default:
        return { status: 404, body: { error: `no simulator control route ${route}` } };
    }
  }
}

function matchesFilter(match: FaultMatch, filter: FaultMatch): boolean {
  return (
    (filter.to === undefined || match.to === filter.to) &&
    (filter.callId === undefined || match.callId === filter.callId) &&
    (filter.path === undefined || match.path === filter.path)
  );
}

const optionalString = (value: unknown): value is string | undefined => value === undefined || typeof value === "string";
const optionalNonNegative = (value: unknown): value is number | undefined =>
  value === undefined || (typeof value === "number" && value >= 0);
const optionalHttpStatus = (value: unknown): value is number | undefined =>
  value === undefined || (typeof value === "number" && Number.isInteger(value) && value >= 100 && value <= 599);

function parseFault(body: unknown): FaultSpec | string {
  if (!isRecord(body) || !isRecord(body.match)) return "expected {match:{to?,callId?,path?}, status?, times?, delayMs?}";
  const { to, callId, path } = body.match;
  if (!optionalString(to) || !optionalString(callId) || !optionalString(path)) return "match fields must be strings";
  if (to === undefined && callId === undefined && path === undefined) return "match needs to, callId or path";
  const { status, times, delayMs } = body;
  if (!optionalHttpStatus(status)) return "status must be an HTTP status";
  if (!optionalNonNegative(times) || !optionalNonNegative(delayMs)) return "times and delayMs must be non-negative numbers";
  if (status === undefined && delayMs === undefined) return "a fault needs a status or a delayMs";
  return {
    match: { ...(to === undefined ? {} : { to }), ...(callId === undefined ? {} : { callId }), ...(path === undefined ? {} : { path }) },
    ...(status === undefined ? {} : { status }),
    ...(times === undefined ? {} : { times }),
    ...(delayMs === undefined ? {} : { delayMs }),
    ...(body.body === undefined ? {} : { body: body.body }),
  };
}

const OUTCOMES: readonly CallOutcome[] = ["answer", "busy", "no-answer", "failed"];

async function parseCallee(body: unknown): Promise<{ to: string; behaviour: CalleeBehaviour } | string> {
  if (!isRecord(body) || typeof body.to !== "string") {
    return "expected {to, outcome, answerDelayMs?, hangUpAfterMs?, audioFile?, answeredBy?}";
  }
  const outcome = OUTCOMES.find((candidate) => candidate === body.outcome);
  if (!outcome) return `outcome must be one of ${OUTCOMES.join(", ")}`;
  const { answerDelayMs, hangUpAfterMs, audioFile } = body;
  if (!optionalNonNegative(answerDelayMs) || !optionalNonNegative(hangUpAfterMs)) return "delays must be non-negative numbers";
  if (!optionalString(audioFile)) return "audioFile must be a path";
  const answeredBy = ANSWERERS.find((candidate) => candidate === body.answeredBy);
  if (body.answeredBy !== undefined && !answeredBy) return `answeredBy must be one of ${ANSWERERS.join(", ")}`;
  let utterances: Int16Array[] | undefined;
  try {
    utterances = audioFile === undefined ? undefined : [readWav(await readFile(audioFile))];
  } catch (error) {
    return `audioFile: ${error instanceof Error ? error.message : String(error)}`;
  }
  return {
    to: body.to,
    behaviour: {
      outcome,
      ...(answerDelayMs === undefined ? {} : { answerDelayMs }),
      ...(hangUpAfterMs === undefined ? {} : { hangUpAfterMs }),
      ...(utterances === undefined ? {} : { utterances }),
      ...(answeredBy === undefined ? {} : { answeredBy }),
    },
  };
}
