import type { IncomingMessage } from "node:http";
import type { CallStatus } from "twilio/lib/rest/api/v2010/account/call.js";
import { CallerScript } from "./caller-script.ts";
import { realTimeClock } from "./clock.ts";
import type { SimulatorControl } from "./control.ts";
import { delay, formValue, formValues, headerValue, parseForm, type Reply, rfc2822, startHttpServer } from "./http.ts";
import { twilioSid } from "./ids.ts";
import { isRecord } from "./media-dialect.ts";
import type { FormParams } from "./signing.ts";
import { Timeline } from "./timeline.ts";
import { TwilioCall } from "./twilio-call.ts";
import type { StatusCallbackDelivery, TwilioStatusEvent } from "./twilio-status-callbacks.ts";

/**
 * A fake of Twilio's REST API: records every request, answers like Twilio (Basic auth, 201/200
 * resources, 404 with code 20404), queues text messages (`Messages.json`, recorded like every request), lists the account's numbers (`IncomingPhoneNumbers.json?PhoneNumber=`), and, once it knows where the platform is, drives the calls it creates back
 * into it (status callbacks, the `Url` webhook, a Media Stream).
 */
export interface FakeTwilioApiOptions {
  accountSid: string;
  authToken: string;
  control: SimulatorControl;
  port?: number;
  statusCallbackDelivery?: StatusCallbackDelivery;
  /** Cap on each driven call's length. Default 60 s. */
  maxCallMs?: number;
}

export interface FakeTwilioApi {
  /** Origin, the TWILIO_API_BASE the platform uses. */
  url: string;
  /** Lets REST hangups and redirects reach a call the simulator placed (inbound calls). */
  adopt(call: TwilioCall): void;
  call(callSid: string): TwilioCall | PassiveCall | undefined;
  close(): Promise<void>;
}

/** A call created while no platform was known to drive it: REST updates only change its recorded status. */
export interface PassiveCall {
  callSid: string;
  status: CallStatus;
  redirects: FormParams[];
}

interface CallRecord {
  sid: string;
  to: string;
  from: string;
  direction: "inbound" | "outbound-api";
  created: Date;
  ended?: Date;
  call: TwilioCall | PassiveCall;
  recordings: Map<string, RecordingRecord>;
}

interface RecordingRecord {
  sid: string;
  status: "in-progress" | "paused" | "stopped";
  channels: number;
  track: string;
  created: Date;
}

const ACCOUNT_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/(.+)$/;
const STATUS_EVENTS: readonly TwilioStatusEvent[] = ["initiated", "ringing", "answered", "completed"];

export async function startFakeTwilioApi(options: FakeTwilioApiOptions): Promise<FakeTwilioApi> {
  const { accountSid, control } = options;
  const calls = new Map<string, CallRecord>();
  const runs = new Set<Promise<void>>();
  const expectedAuthorization = `Basic ${Buffer.from(`${accountSid}:${options.authToken}`).toString("base64")}`;

  const isLive = (record: CallRecord) =>
    "isLive" in record.call ? record.call.isLive : !["completed", "canceled"].includes(record.call.status);

  const callResource = (record: CallRecord, status: CallStatus = record.call.status) => ({
    sid: record.sid,
    date_created: rfc2822(record.created),
    date_updated: rfc2822(new Date()),
    parent_call_sid: null,
    account_sid: accountSid,
    to: record.to,
    to_formatted: record.to,
    from: record.from,
    from_formatted: record.from,
    phone_number_sid: null,
    status,
    start_time: rfc2822(record.created),
    end_time: record.ended ? rfc2822(record.ended) : null,
    duration: null,
    price: null,
    price_unit: "USD",
    direction: record.direction,
    answered_by: null,
    api_version: "2010-04-01",
    forwarded_from: null,
    group_sid: null,
    caller_name: null,
    queue_time: "0",
    trunk_sid: null,
    uri: `/2010-04-01/Accounts/${accountSid}/Calls/${record.sid}.json`,
    subresource_uris: {
      recordings: `/2010-04-01/Accounts/${accountSid}/Calls/${record.sid}/Recordings.json`,
      notifications: `/2010-04-01/Accounts/${accountSid}/Calls/${record.sid}/Notifications.json`,
    },
  });

  const recordingResource = (record: CallRecord, recording: RecordingRecord) => ({
    sid: recording.sid,
    account_sid: accountSid,
    call_sid: record.sid,
    conference_sid: null,
    date_created: rfc2822(recording.created),
    date_updated: rfc2822(new Date()),
    start_time: rfc2822(recording.created),
    duration: recording.status === "stopped" ? "0" : null,
    price: null,
    price_unit: "USD",
    status: recording.status,
    channels: recording.channels,
    source: "StartCallRecording",
    error_code: null,
    track: recording.track,
    uri: `/2010-04-01/Accounts/${accountSid}/Calls/${record.sid}/Recordings/${recording.sid}.json`,
  });

  /** One page of the account's numbers matching `PhoneNumber` (Twilio matches partial numbers; so does this). */
  const incomingPhoneNumbers = (query: URLSearchParams): Reply => {
    const wanted = query.get("PhoneNumber") ?? "";
    const path = `/2010-04-01/Accounts/${accountSid}/IncomingPhoneNumbers.json`;
    const held = wanted.startsWith("+") && control.numberOnAccount(wanted) ? [wanted] : [];
    const now = rfc2822(new Date());
    const numbers = held.map((phoneNumber) => {
      const sid = twilioSid("PN");
      return {
        account_sid: accountSid,
        address_requirements: "none",
        api_version: "2010-04-01",
        beta: false,
        capabilities: { voice: true, sms: true, mms: true, fax: false },
        date_created: now,
        date_updated: now,
        friendly_name: phoneNumber,
        origin: "twilio",
        phone_number: phoneNumber,
        sid,
        status: "in-use",
        type: "local",
        uri: `/2010-04-01/Accounts/${accountSid}/IncomingPhoneNumbers/${sid}.json`,
        voice_method: "POST",
        voice_url: null,
      };
    });
    const uri = `${path}?PhoneNumber=${encodeURIComponent(wanted)}&PageSize=50&Page=0`;
    return {
      status: 200,
      body: {
        end: Math.max(0, numbers.length - 1),
        first_page_uri: uri,
        incoming_phone_numbers: numbers,
        next_page_uri: null,
        page: 0,
        page_size: 50,
        previous_page_uri: null,
        start: 0,
        uri,
      },
    };
  };

  const twilioError = (status: number, code: number, message: string): Reply => ({
    status,
    body: { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status },
  });
  const notFound = (path: string) => twilioError(404, 20404, `The requested resource ${path} was not found`);

  const drive = (record: CallRecord, params: FormParams) => {
    const platform = control.platform;
    if (!platform) return;
    const callee = control.callee(record.to);
    const clock = realTimeClock();
    const url = formValue(params, "Url");
    const twiml = formValue(params, "Twiml");
    const statusCallbackUrl = formValue(params, "StatusCallback");
    const events = formValues(params, "StatusCallbackEvent").flatMap((value) => value.split(/\s+/));
    const detection = formValue(params, "MachineDetection");
    const amdCallback = formValue(params, "AsyncAmdStatusCallback");
    const call = new TwilioCall({
      platform,
      accountSid,
      authToken: options.authToken,
      callSid: record.sid,
      from: record.from,
      to: record.to,
      direction: "outbound-api",
      ...(url ? { voiceUrl: url } : {}),
      ...(twiml ? { twiml } : {}),
      ...(statusCallbackUrl
        ? {
            statusCallback: {
              url: statusCallbackUrl,
              // Twilio's default subscription is `completed` only.
              events: events.length > 0 ? STATUS_EVENTS.filter((event) => events.includes(event)) : ["completed"],
            },
          }
        : {}),
      ...(options.statusCallbackDelivery ? { statusCallbackDelivery: options.statusCallbackDelivery } : {}),
      // Only the asynchronous form is simulated (the platform asks for no other).
      ...((detection === "Enable" || detection === "DetectMessageEnd") && formValue(params, "AsyncAmd") === "true" && amdCallback
        ? { machineDetection: { mode: detection, callbackUrl: amdCallback, answeredBy: callee.answeredBy ?? "human" } }
        : {}),
      outcome: callee.outcome,
      answerDelayMs: callee.answerDelayMs ?? 100,
      ...(callee.hangUpAfterMs === undefined ? {} : { hangUpAfterMs: callee.hangUpAfterMs }),
      clock,
      timeline: new Timeline(clock),
      // The callee says its lines, then stays on the line until someone hangs up.
      script: new CallerScript({ utterances: callee.utterances ?? [], pauseMs: 300, lingerMs: Number.POSITIVE_INFINITY }),
      maxDurationMs: options.maxCallMs ?? 60_000,
    });
    record.call = call;
    const run = call.run().finally(() => {
      record.ended = new Date();
      runs.delete(run);
    });
    runs.add(run);
  };

  const createCall = (params: FormParams): Reply => {
    const to = formValue(params, "To");
    const from = formValue(params, "From");
    if (!to) return twilioError(400, 21201, "No 'To' number is specified");
    if (!from) return twilioError(400, 21213, "No 'From' number is specified");
    if (!formValue(params, "Url") && !formValue(params, "Twiml") && !formValue(params, "ApplicationSid")) {
      return twilioError(400, 21205, "Url parameter is required");
    }
    const sid = twilioSid("CA");
    const record: CallRecord = {
      sid,
      to,
      from,
      direction: "outbound-api",
      created: new Date(),
      call: { callSid: sid, status: "queued", redirects: [] },
      recordings: new Map(),
    };
    calls.set(sid, record);
    const resource = callResource(record);
    drive(record, params);
    return { status: 201, body: resource };
  };

  /** `Messages.json`: queues a text message, answered like Twilio's Message resource (201, status `queued`). */
  const createMessage = (params: FormParams): Reply => {
    const to = formValue(params, "To");
    const from = formValue(params, "From");
    const body = formValue(params, "Body");
    if (!to) return twilioError(400, 21604, "A 'To' phone number is required.");
    if (!from) return twilioError(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.");
    if (!body) return twilioError(400, 21602, "Message body is required.");
    const sid = twilioSid("SM");
    const now = rfc2822(new Date());
    return {
      status: 201,
      body: {
        account_sid: accountSid,
        api_version: "2010-04-01",
        body,
        date_created: now,
        date_sent: null,
        date_updated: now,
        direction: "outbound-api",
        error_code: null,
        error_message: null,
        from,
        messaging_service_sid: null,
        num_media: "0",
        num_segments: "1",
        price: null,
        price_unit: "USD",
        sid,
        status: "queued",
        subresource_uris: { media: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}/Media.json` },
        to,
        uri: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}.json`,
      },
    };
  };

  const updateCall = (record: CallRecord, params: FormParams, path: string): Reply => {
    if (!isLive(record)) return notFound(path);
    const status = formValue(params, "Status");
    const url = formValue(params, "Url");
    const twiml = formValue(params, "Twiml");
    const { call } = record;
    if (status === "completed" || status === "canceled") {
      if ("hangUp" in call) return { status: 200, body: callResource(record, call.hangUp(status)) };
      call.status = status;
      record.ended = new Date();
      return { status: 200, body: callResource(record) };
    }
    if (status !== undefined) return twilioError(400, 21218, `Invalid Status ${status}`);
    const source = url ? { url } : twiml ? { twiml } : undefined;
    if (!source) return twilioError(400, 21205, "Url parameter is required");
    if ("redirect" in call) call.redirect(source);
    else call.redirects.push(params);
    return { status: 200, body: callResource(record) };
  };

  const route = (method: string, url: URL, params: FormParams, record: CallRecord | undefined): Reply => {
    const path = url.pathname;
    const [, , resource = ""] = ACCOUNT_PATH.exec(path) ?? [];
    if (method === "POST" && resource === "Calls.json") return createCall(params);
    if (method === "POST" && resource === "Messages.json") return createMessage(params);
    if (method === "GET" && resource === "IncomingPhoneNumbers.json") return incomingPhoneNumbers(url.searchParams);
    if (!record) return notFound(path);
    const recordingMatch = /^Calls\/[^/]+\/Recordings(?:\/([^/]+))?\.json$/.exec(resource);
    if (/^Calls\/[^/]+\.json$/.test(resource)) {
      if (method === "GET") return { status: 200, body: callResource(record) };
      if (method === "POST") return updateCall(record, params, path);
    } else if (recordingMatch && method === "POST") {
      const recordingSid = recordingMatch[1];
      if (recordingSid === undefined) {
        if (!isLive(record)) return notFound(path);
        const recording: RecordingRecord = {
          sid: twilioSid("RE"),
          status: "in-progress",
          channels: formValue(params, "RecordingChannels") === "dual" ? 2 : 1,
          track: formValue(params, "RecordingTrack") ?? "both",
          created: new Date(),
        };
        record.recordings.set(recording.sid, recording);
        return { status: 201, body: recordingResource(record, recording) };
      }
      const recording = record.recordings.get(recordingSid);
      const status = formValue(params, "Status");
      if (!recording) return notFound(path);
      if (status !== "stopped" && status !== "paused" && status !== "in-progress") {
        return twilioError(400, 21220, `Invalid Status ${String(status)}`);
      }
      recording.status = status;
      return { status: 200, body: recordingResource(record, recording) };
    }
    return twilioError(405, 20004, `Method ${method} not allowed on ${path}`);
  };

  const handle = async (request: IncomingMessage, rawBody: string): Promise<Reply> => {
    const url = new URL(request.url ?? "/", "http://twilio");
    const method = request.method ?? "GET";
    const params = parseForm(rawBody);
    const [, pathAccount, resource = ""] = ACCOUNT_PATH.exec(url.pathname) ?? [];
    const callSid = /^Calls\/([^/.]+)/.exec(resource)?.[1];
    const record = callSid === undefined ? undefined : calls.get(callSid);
    // Faults and the log key a number lookup by the number looked up.
    const to = formValue(params, "To") ?? record?.to ?? url.searchParams.get("PhoneNumber") ?? undefined;
    const { authorization: _authorization, ...headers } = request.headers;
    const logged = control.record({
      carrier: "twilio",
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, String(value)])),
      body: params,
      time: new Date().toISOString(),
      ...(callSid === undefined ? {} : { callId: callSid }),
      ...(to === undefined ? {} : { to }),
    });
    const reply = await (async (): Promise<Reply> => {
      if (headerValue(request, "authorization") !== expectedAuthorization || pathAccount !== accountSid) {
        return twilioError(401, 20003, "Authenticate");
      }
      const fault = control.takeFault({ path: url.pathname, ...(to ? { to } : {}), ...(callSid ? { callId: callSid } : {}) });
      if (fault) {
        logged.fault = fault;
        if (fault.delayMs) await delay(fault.delayMs);
        if (fault.status !== undefined) {
          return fault.body !== undefined ? { status: fault.status, body: fault.body } : twilioError(fault.status, 20500, "Injected fault");
        }
      }
      return route(method, url, params, record);
    })();
    logged.status = reply.status;
    if (reply.status === 201 && isRecord(reply.body) && typeof reply.body.sid === "string" && /^(Calls|Messages)\.json$/.test(resource)) {
      logged.callId = reply.body.sid;
    }
    return reply;
  };

  const server = await startHttpServer(handle, options.port);
  return {
    url: server.url,
    adopt(call) {
      calls.set(call.callSid, {
        sid: call.callSid,
        to: call.options.to,
        from: call.options.from,
        direction: call.options.direction,
        created: new Date(),
        call,
        recordings: new Map(),
      });
    },
    call: (callSid) => calls.get(callSid)?.call,
    async close() {
      for (const record of calls.values()) {
        if ("hangUp" in record.call) record.call.hangUp("completed");
      }
      await Promise.all(runs);
      await server.close();
    },
  };
}
