import type { IncomingMessage } from "node:http";
import type { CallDialResponse } from "telnyx/resources/calls/calls";
import type { OutboundMessagePayload } from "telnyx/resources/messages/messages";
import type { NumbersPhoneNumberDetailed } from "telnyx/resources/phone-numbers/phone-numbers";
import { CallerScript } from "./caller-script.ts";
import { realTimeClock } from "./clock.ts";
import type { SimulatorControl } from "./control.ts";
import { delay, headerValue, parseJson, type Reply, startHttpServer } from "./http.ts";
import { telnyxCallControlId, uuid } from "./ids.ts";
import { isRecord } from "./media-dialect.ts";
import type { TelnyxSigner } from "./signing.ts";
import { TelnyxCall } from "./telnyx-call.ts";
import { Timeline } from "./timeline.ts";

/**
 * A fake of Telnyx Call Control: Bearer auth, JSON, `command_id` de-duplication, 422/90018 for
 * calls that ended; text messages (`POST /v2/messages`, recorded like every request); and the account's numbers (`GET /v2/phone_numbers?filter[phone_number]=`). Commands reach the TelnyxCall they target, which sends the webhooks and runs the media
 * stream; dialled calls are driven back into the platform once the platform's address is known.
 */
export interface FakeTelnyxApiOptions {
  apiKey: string;
  control: SimulatorControl;
  signer: TelnyxSigner;
  port?: number;
  /** Cap on each driven call's length. Default 60 s. */
  maxCallMs?: number;
  /** Media stream misbehaviour for dialled calls. */
  media?: { reorderWindow?: number; duplicateEvery?: number; seed?: number };
}

export interface FakeTelnyxApi {
  /** Origin, the TELNYX_API_BASE the platform uses. */
  url: string;
  /** Registers a call the simulator placed, so the platform's commands reach it. */
  adopt(call: TelnyxCall): void;
  call(callControlId: string): TelnyxCall | PassiveCall | undefined;
  close(): Promise<void>;
}

/**
 * A call nobody drives: dialled while the platform's address was unknown, or a call id no simulator placed
 * (a test posted the webhook itself). Commands are only recorded; `hangup` ends it.
 */
export interface PassiveCall {
  callControlId: string;
  callLegId: string;
  callSessionId: string;
  to?: string;
  isAlive: boolean;
  commands: string[];
}

interface CallEntry {
  call: TelnyxCall | PassiveCall;
  commandIds: Set<string>;
}

const ACTION_PATH = /^\/v2\/calls\/([^/]+)\/actions\/([a-z_]+)$/;

export async function startFakeTelnyxApi(options: FakeTelnyxApiOptions): Promise<FakeTelnyxApi> {
  const { control } = options;
  const calls = new Map<string, CallEntry>();
  const runs = new Set<Promise<void>>();

  const telnyxError = (status: number, code: string, title: string, detail: string): Reply => ({
    status,
    body: { errors: [{ code, title, detail }] },
  });

  /**
   * One page of the account's numbers whose digits contain `filter[phone_number]`: Telnyx wants digits only ("non-
   * numerical characters will result in no values being returned"), so a `+` finds nothing, as at Telnyx.
   */
  const phoneNumbers = (query: URLSearchParams): Reply => {
    const digits = query.get("filter[phone_number]") ?? "";
    const e164 = `+${digits}`;
    const held = /^\d{3,15}$/.test(digits) && control.numberOnAccount(e164) ? [e164] : [];
    const now = new Date().toISOString();
    const data = held.map(
      (phoneNumber): NumbersPhoneNumberDetailed => ({
        id: String(Math.floor(Math.random() * 1e18)),
        record_type: "phone_number",
        phone_number: phoneNumber,
        phone_number_type: "local",
        country_iso_alpha2: "US",
        status: "active",
        tags: [],
        external_pin: null,
        deletion_lock_enabled: false,
        connection_id: "simulated-connection",
        created_at: now,
        purchased_at: now,
        updated_at: now,
      }),
    );
    return { status: 200, body: { data, meta: { page_number: 1, page_size: 20, total_pages: 1, total_results: data.length } } };
  };

  const track = (run: Promise<void>) => {
    const tracked = run.finally(() => runs.delete(tracked));
    runs.add(tracked);
  };

  /** `POST /v2/messages`: queues a text message, answered like Telnyx (200, `data` the outbound message, `queued`). */
  const sendMessage = (body: Record<string, unknown>): Reply => {
    for (const field of ["to", "from", "text"]) {
      if (typeof body[field] !== "string" || body[field] === "") {
        return telnyxError(422, "40300", "Invalid value", `${field} is required`);
      }
    }
    const now = new Date().toISOString();
    const data: OutboundMessagePayload = {
      id: uuid(),
      record_type: "message",
      direction: "outbound",
      type: "SMS",
      from: { phone_number: String(body.from) },
      to: [{ phone_number: String(body.to), status: "queued" }],
      text: String(body.text),
      encoding: "GSM-7",
      parts: 1,
      received_at: now,
      sent_at: null,
      completed_at: null,
      errors: [],
    };
    return { status: 200, body: { data } };
  };

  const dial = (body: Record<string, unknown>): Reply => {
    for (const field of ["connection_id", "to", "from"]) {
      if (typeof body[field] !== "string" || body[field] === "") {
        return telnyxError(422, "10015", "Invalid value", `${field} is required`);
      }
    }
    const to = String(body.to);
    const ids = { callControlId: telnyxCallControlId(), callLegId: uuid(), callSessionId: uuid() };
    const data: CallDialResponse.Data = {
      call_control_id: ids.callControlId,
      call_leg_id: ids.callLegId,
      call_session_id: ids.callSessionId,
      // telnyx-node: "For Dial command it will always be `false` (dialing is asynchronous)".
      is_alive: false,
      record_type: "call",
    };
    const { platform } = control;
    if (!platform) {
      calls.set(ids.callControlId, { call: { ...ids, to, isAlive: true, commands: [] }, commandIds: new Set() });
      return { status: 200, body: { data } };
    }
    const callee = control.callee(to);
    const clock = realTimeClock();
    const dialStream = Object.fromEntries(Object.entries(body).filter(([name]) => name.startsWith("stream_")));
    const call = new TelnyxCall({
      ...ids,
      platform,
      signer: options.signer,
      connectionId: String(body.connection_id),
      from: String(body.from),
      to,
      direction: "outgoing",
      ...(typeof body.webhook_url === "string" ? { webhookUrl: body.webhook_url } : {}),
      ...(typeof body.client_state === "string" ? { clientState: body.client_state } : {}),
      dialStream,
      outcome: callee.outcome,
      answerDelayMs: callee.answerDelayMs ?? 100,
      ...(callee.hangUpAfterMs === undefined ? {} : { hangUpAfterMs: callee.hangUpAfterMs }),
      clock,
      timeline: new Timeline(clock),
      // The callee says its lines, then stays on the line until someone hangs up.
      script: new CallerScript({ utterances: callee.utterances ?? [], pauseMs: 300, lingerMs: Number.POSITIVE_INFINITY }),
      maxDurationMs: options.maxCallMs ?? 60_000,
      ...(options.media ? { media: options.media } : {}),
      ...(typeof body.answering_machine_detection === "string"
        ? { machineDetection: { mode: body.answering_machine_detection, answeredBy: callee.answeredBy ?? "human" } }
        : {}),
    });
    calls.set(call.callControlId, { call, commandIds: new Set() });
    return { status: 200, body: { data }, after: () => track(call.run()) };
  };

  const act = (callControlId: string, action: string, body: Record<string, unknown>, note: (text: string) => void): Reply => {
    let entry = calls.get(callControlId);
    if (!entry) {
      note("unknown call id, adopted as a passive call");
      entry = { call: { callControlId, callLegId: uuid(), callSessionId: uuid(), isAlive: true, commands: [] }, commandIds: new Set() };
      calls.set(callControlId, entry);
    }
    const { call } = entry;
    const ok: Reply = { status: 200, body: { data: { result: "ok" } } };
    const commandId = typeof body.command_id === "string" ? body.command_id : undefined;
    // Telnyx ignores a repeated command_id on the same call and answers as if it ran: a retried hangup
    // succeeds even though the first one ended the call.
    if (commandId !== undefined && entry.commandIds.has(commandId)) {
      note(`duplicate command_id ${commandId}: ignored`);
      return ok;
    }
    if (!call.isAlive) {
      return telnyxError(422, "90018", "Call has already ended", "This call is no longer active and can't receive commands.");
    }
    if (commandId !== undefined) entry.commandIds.add(commandId);
    if (call instanceof TelnyxCall) return { ...ok, after: () => call.command(action, body) };
    call.commands.push(action);
    if (action === "hangup" || action === "reject") call.isAlive = false;
    return ok;
  };

  const route = (method: string, url: URL, body: unknown, note: (text: string) => void): Reply => {
    const path = url.pathname;
    if (method === "GET" && path === "/v2/phone_numbers") return phoneNumbers(url.searchParams);
    if (method === "POST" && path === "/v2/messages") {
      return isRecord(body) ? sendMessage(body) : telnyxError(400, "10015", "Bad Request", "body must be a JSON object");
    }
    if (method === "POST" && path === "/v2/calls") {
      return isRecord(body) ? dial(body) : telnyxError(400, "10015", "Bad Request", "body must be a JSON object");
    }
    const action = ACTION_PATH.exec(path);
    if (method === "POST" && action) {
      const payload = body === undefined ? {} : body;
      if (!isRecord(payload)) return telnyxError(400, "10015", "Bad Request", "body must be a JSON object");
      return act(decodeURIComponent(action[1]!), action[2]!, payload, note);
    }
    const callPath = /^\/v2\/calls\/([^/]+)$/.exec(path);
    const entry = callPath ? calls.get(decodeURIComponent(callPath[1]!)) : undefined;
    if (method === "GET" && entry) {
      const { call } = entry;
      return {
        status: 200,
        body: {
          data: {
            call_control_id: call.callControlId,
            call_leg_id: call.callLegId,
            call_session_id: call.callSessionId,
            is_alive: call.isAlive,
            record_type: "call",
          },
        },
      };
    }
    return telnyxError(404, "10005", "Resource not found", `${method} ${path}`);
  };

  const handle = async (request: IncomingMessage, rawBody: string): Promise<Reply> => {
    const url = new URL(request.url ?? "/", "http://telnyx");
    const method = request.method ?? "GET";
    const body = rawBody === "" ? undefined : (parseJson(rawBody) ?? rawBody);
    const idInPath = /^\/v2\/calls\/([^/]+)/.exec(url.pathname)?.[1];
    const callId = idInPath === undefined ? undefined : decodeURIComponent(idInPath);
    // Faults and the log key a dial by the number dialled, an action by the number its call went to.
    const dialled = isRecord(body) && typeof body.to === "string" ? body.to : undefined;
    const lookedUp = url.pathname === "/v2/phone_numbers" ? url.searchParams.get("filter[phone_number]") : null;
    const to = callId === undefined ? (dialled ?? (lookedUp === null ? undefined : `+${lookedUp}`)) : calls.get(callId)?.call.to;
    const { authorization: _authorization, ...headers } = request.headers;
    const logged = control.record({
      carrier: "telnyx",
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, String(value)])),
      body,
      time: new Date().toISOString(),
      ...(callId === undefined ? {} : { callId }),
      ...(to === undefined ? {} : { to }),
    });
    const note = (text: string) => {
      logged.note = logged.note ? `${logged.note}; ${text}` : text;
    };
    const reply = await (async (): Promise<Reply> => {
      if (headerValue(request, "authorization") !== `Bearer ${options.apiKey}`) {
        return telnyxError(401, "10009", "Authentication failed", "The API key is missing or invalid.");
      }
      if (typeof body === "string") return telnyxError(400, "10015", "Bad Request", "body is not JSON");
      const fault = control.takeFault({ path: url.pathname, ...(to ? { to } : {}), ...(callId ? { callId } : {}) });
      if (fault) {
        logged.fault = fault;
        if (fault.delayMs) await delay(fault.delayMs);
        if (fault.status !== undefined) {
          return fault.body !== undefined
            ? { status: fault.status, body: fault.body }
            : telnyxError(fault.status, "10007", "Unexpected error", "injected fault");
        }
      }
      return route(method, url, body, note);
    })();
    logged.status = reply.status;
    const created = isRecord(reply.body) && isRecord(reply.body.data) ? reply.body.data.call_control_id : undefined;
    if (logged.callId === undefined && typeof created === "string") logged.callId = created;
    return reply;
  };

  const server = await startHttpServer(handle, options.port);
  return {
    url: server.url,
    adopt(call) {
      calls.set(call.callControlId, { call, commandIds: new Set() });
    },
    call: (callControlId) => calls.get(callControlId)?.call,
    async close() {
      for (const { call } of calls.values()) {
        if (call instanceof TelnyxCall) call.command("hangup", {});
      }
      await Promise.all(runs);
      await server.close();
    },
  };
}
