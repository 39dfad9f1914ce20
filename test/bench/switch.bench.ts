/**
 * Provider switches and failover in live Twilio calls: `node test/bench/switch.bench.ts [--calls 20] [--concurrency 2]
 * [--phases switch,failover,failover-breaker-1]` (`npm run bench` runs it after load.bench.ts). The same
 * pieces as the load bench: the real Worker started locally (test/node/support/local-platform.ts, a fresh
 * platform per phase), the provider simulator, and Twilio's side written with `ws` (twilio-side.ts). Every call: the
 * caller says caller-hello.wav (answered by OpenAI), 3 s of silence, then — at the moment of the phase's action —
 * caller-payment.wav in real time, then silence until the new provider has answered (bounded).
 *
 * Phases (each call repeated `--calls` times, at most `--concurrency` (≤ 3) at once):
 * - switch: `POST /api/v1/sessions/{id}/switch-provider {"provider":"gemini","immediate":true}` as the admin.
 *   (a) request sent → HTTP response (the cut-over; `durationMs` from the body too); (b) the end of the caller's next
 *   utterance → the first agent audio from gemini on the Twilio socket (the simulator's recording says which
 *   connection sent each chunk); (c) caller frames sent from the request to 2 s after the response vs the frames
 *   the providers (old + new connection) received of them.
 * - failover: `${key}#openai` = {refuseUpgrade: 503}, then `POST /__sim/sessions/:key/drop` (the OpenAI socket is
 *   destroyed); drop (the simulator's close time) → gemini upgrade accepted, → gemini `setupComplete`, → first gemini
 *   agent audio on the Twilio socket. PRODUCTION reconnect and breaker values (1 s base, 5 attempts; breaker 5
 *   failures, 60 s). `failover-breaker-1` / `failover-breaker-2`: the same with PROVIDER_BREAKER_FAILURES 1 / 2.
 * All clocks: `performance.timeOrigin + performance.now()` in this process (the simulator recorder's clock).
 * Prints tables; asserts nothing about time. Bounded: every call has a deadline; everything closes itself.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ApiClient, LocalPlatform } from "../node/support/local-platform.ts";
import { FRAME_MS, readWav, SAMPLES_PER_FRAME } from "../simulators/carriers/audio.ts";
import { uuid } from "../simulators/carriers/ids.ts";
import {
  type ConnectionSnapshot,
  type ProviderSimulator,
  providerSimulatorSettings,
  startProviderSimulator,
} from "../simulators/providers/index.ts";
import { preciseNow } from "../simulators/providers/recorder.ts";
import { testSettings } from "../support/test-settings.ts";
import { startBenchPlatform, stopBenchCarriers } from "./bench-platform.ts";
import { type CallState, finishCall, framePayloads, ms, newCall, pumpFrames, startCall, summarize, table } from "./twilio-side.ts";

type PhaseName = "switch" | "failover" | "failover-breaker-1" | "failover-breaker-2";
const PHASES: PhaseName[] = ["switch", "failover", "failover-breaker-1", "failover-breaker-2"];

const argument = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const CALLS = Number(argument("--calls") ?? process.env.BENCH_SWITCH_CALLS ?? 20);
const CONCURRENCY = Number(argument("--concurrency") ?? 2);
const phaseList = (argument("--phases") ?? "switch,failover,failover-breaker-1").split(",");
if (!Number.isInteger(CALLS) || CALLS < 1 || CALLS > 200) throw new Error("--calls: expected 1..200");
if (!Number.isInteger(CONCURRENCY) || CONCURRENCY < 1 || CONCURRENCY > 3) throw new Error("--concurrency: expected 1..3");
for (const phase of phaseList)
  if (!PHASES.includes(phase as PhaseName)) throw new Error(`--phases: unknown ${phase}; have ${PHASES.join(", ")}`);
const RUN_PHASES = phaseList as PhaseName[];

const NUMBER = "+15550178001"; // a Twilio number whose calls start on openai
const TICK_MS = 5;
const POLL_MS = 100;
/** After the action a call lasts until the new provider's first audio has reached the caller plus this, bounded. */
const AFTER_ANSWER_MS = 1_000;
const FRAME_WINDOW_AFTER_RESPONSE_MS = 2_000;
const ACTION_DEADLINE_MS: Record<PhaseName, number> = {
  switch: 20_000,
  failover: 45_000,
  "failover-breaker-1": 20_000,
  "failover-breaker-2": 20_000,
};

// ── the caller's audio ─────────────────────────────────────────────────────────────────────────────────────

const AUDIO = join(import.meta.dirname, "../fixtures/audio");
const wav = (name: string) => readWav(readFileSync(join(AUDIO, name)));
const silence = (ms: number) => new Int16Array((ms * 8000) / 1000);
const hello = wav("caller-hello.wav");
const PAUSE_MS = 3_000;
const parts = [hello, silence(PAUSE_MS), wav("caller-payment.wav"), silence(1_000)];
const script = new Int16Array(parts.reduce((total, part) => total + part.length, 0));
for (let index = 0, offset = 0; index < parts.length; offset += parts[index]!.length, index++) script.set(parts[index]!, offset);
const PAYLOADS = framePayloads(script);
const SILENT_PAYLOAD = framePayloads(silence(FRAME_MS))[0]!;
/** The frame at which the phase's action happens and the caller starts the next utterance. */
const ACTION_FRAME = Math.floor((hello.length + silence(PAUSE_MS).length) / SAMPLES_PER_FRAME);
/** Voiced frames as the simulator's VAD judges them (-45 dBFS): the last one of each utterance ends it. */
const voiced = (index: number) => {
  const frame = script.subarray(index * SAMPLES_PER_FRAME, (index + 1) * SAMPLES_PER_FRAME);
  const rms = Math.sqrt(frame.reduce((total, sample) => total + sample * sample, 0) / frame.length);
  return 20 * Math.log10(rms / 32768 + 1e-12) > -45;
};
const lastVoiced = (from: number, to: number) => {
  for (let index = to - 1; index >= from; index--) if (voiced(index)) return index;
  return from;
};
const HELLO_END_FRAME = lastVoiced(0, ACTION_FRAME);
const NEXT_END_FRAME = lastVoiced(ACTION_FRAME, PAYLOADS.length);
const REPLIES = ["Sure, one moment.", "Done, the payment is recorded.", "Anything else?"];

// ── one call ─────────────────────────────────────────────────────────────────────────────────────────────

interface CallRecord {
  phase: PhaseName;
  failure: string | null;
  call: CallState;
  /** The action: switch request sent / drop (the simulator's close of the OpenAI socket). */
  actionAt: number | null;
  responseAt: number | null;
  response: { status: number; body: Record<string, unknown> } | null;
  answeredBeforeAction: boolean;
  connections: ConnectionSnapshot[];
  counters: Record<string, number> | null;
  switchHistory: Array<Record<string, unknown>>;
}

async function runCall(
  phase: PhaseName,
  platform: LocalPlatform,
  api: ApiClient,
  simulator: ProviderSimulator,
  index: number,
): Promise<CallRecord> {
  const key = `switch-${phase}-${index}-${uuid().slice(0, 8)}`;
  const call = newCall(key, `198.18.${100 + RUN_PHASES.indexOf(phase)}.${(index % 250) + 1}`, PAYLOADS.length);
  const record: CallRecord = {
    phase,
    failure: null,
    call,
    actionAt: null,
    responseAt: null,
    response: null,
    answeredBeforeAction: false,
    connections: [],
    counters: null,
    switchHistory: [],
  };
  simulator.control.setScenario(key, { replies: REPLIES });
  const payloadAt = (_call: CallState, frame: number) => PAYLOADS[frame] ?? SILENT_PAYLOAD;
  let action: Promise<void> | null = null;
  let newProviderHeardAt: number | null = null;
  try {
    await startCall(platform.url, call, NUMBER, () => undefined);
    const deadline = call.streamStartedAt + ACTION_FRAME * FRAME_MS + ACTION_DEADLINE_MS[phase];
    let nextPoll = 0;
    for (;;) {
      const now = performance.now();
      if (!action && call.streamStartedAt + ACTION_FRAME * FRAME_MS <= now) {
        record.answeredBeforeAction = call.agentMediaAt.length > 0;
        action = phase === "switch" ? switchNow(api, record) : dropNow(simulator, record);
        action.catch((error: unknown) => (record.failure ??= `action: ${String(error)}`));
      }
      // Keep the line carrying silence until the new provider has answered (and the frame window is over).
      if (call.nextFrame >= call.frameCount - 100) growFrames(call);
      pumpFrames([call], payloadAt);
      if (call.failure) throw new Error(call.failure);
      if (action && now >= nextPoll) {
        nextPoll = now + POLL_MS;
        const gemini = simulator.control
          .sessions(key)
          .find((connection) => connection.provider === "gemini" && connection.refusedWithStatus === null);
        const firstChunk = gemini?.audioOut.chunkTimes.entries[0]?.at;
        if (firstChunk !== undefined && newProviderHeardAt === null) {
          const media = call.agentMediaAt.find((at) => at >= firstChunk);
          if (media !== undefined) newProviderHeardAt = media;
        }
      }
      const windowDone = record.responseAt !== null && preciseNow() >= record.responseAt + FRAME_WINDOW_AFTER_RESPONSE_MS;
      if (
        newProviderHeardAt !== null &&
        preciseNow() >= newProviderHeardAt + AFTER_ANSWER_MS &&
        call.nextFrame >= PAYLOADS.length &&
        (phase !== "switch" || windowDone)
      )
        break;
      if (now > deadline) {
        record.failure = `no audio from gemini within ${ACTION_DEADLINE_MS[phase] / 1000} s of the ${phase === "switch" ? "switch request" : "drop"}`;
        break;
      }
      await sleep(TICK_MS);
    }
    await action;
    if (call.sessionId) {
      const detail = await api.request("GET", `/api/v1/sessions/${call.sessionId}`);
      const live = (detail.body as { live?: { counters?: Record<string, number> } | null } | undefined)?.live;
      record.counters = live?.counters ?? null;
    }
  } catch (error) {
    record.failure ??= String(error instanceof Error ? error.message : error);
  } finally {
    call.phase = "tail";
    await finishCall(platform.url, call, NUMBER).catch(() => undefined);
    call.socket?.terminate();
  }
  await sleep(300); // the simulator sees the close
  if (call.sessionId) {
    const history = await api.request("GET", `/api/v1/sessions/${call.sessionId}/switch-history`).catch(() => null);
    const body = history?.body as
      | { switches?: Array<Record<string, unknown>>; items?: Array<Record<string, unknown>> }
      | Array<Record<string, unknown>>
      | undefined;
    record.switchHistory = Array.isArray(body) ? body : (body?.switches ?? body?.items ?? []);
  }
  record.connections = simulator.control.sessions(key);
  simulator.control.clearSessions(key);
  simulator.control.clearScenario(key);
  simulator.control.clearScenario(`${key}#openai`);
  return record;
}

/** One more second of silence for the pump (sentAt grows with it). */
function growFrames(call: CallState): void {
  const more = 1000 / FRAME_MS;
  const sentAt = new Float64Array(call.frameCount + more);
  sentAt.set(call.sentAt);
  call.sentAt = sentAt;
  call.frameCount += more;
}

async function switchNow(api: ApiClient, record: CallRecord): Promise<void> {
  const sessionId = record.call.sessionId;
  if (!sessionId) throw new Error("no session id in the TwiML");
  record.actionAt = preciseNow();
  const response = await api.request("POST", `/api/v1/sessions/${sessionId}/switch-provider`, { provider: "gemini", immediate: true });
  record.responseAt = preciseNow();
  record.response = { status: response.status, body: (response.body ?? {}) as Record<string, unknown> };
  if (response.status !== 200) record.failure = `switch-provider: HTTP ${response.status} ${JSON.stringify(response.body).slice(0, 200)}`;
}

async function dropNow(simulator: ProviderSimulator, record: CallRecord): Promise<void> {
  const key = record.call.key;
  simulator.control.setScenario(`${key}#openai`, { refuseUpgrade: 503 });
  const sentAt = preciseNow();
  const response = await fetch(`${simulator.baseHttpUrl}/__sim/sessions/${encodeURIComponent(key)}/drop`, { method: "POST" });
  const body = (await response.json()) as { dropped?: number };
  if (body.dropped !== 1) throw new Error(`drop: ${JSON.stringify(body)}`);
  // The simulator's own time of the drop (its recorder's close), else when the request went out.
  const dropped = simulator.control.sessions(key).find((connection) => connection.provider === "openai" && connection.close?.by === "drop");
  record.actionAt = dropped?.closedAt ?? sentAt;
  record.responseAt = record.actionAt;
}

// ── figures ──────────────────────────────────────────────────────────────────────────────────────────────

interface Figures {
  calls: number;
  ok: number;
  failures: string[];
  notes: string[];
  /** switch */
  request: number[];
  durationMs: number[];
  nextTurn: number[];
  nextTurnSimulator: number[];
  nextTurnPlatform: number[];
  firstTurn: number[];
  /** failover */
  toUpgrade: number[];
  toSetup: number[];
  toAudio: number[];
  toAudioAfterSpeech: number[];
  historyDurationMs: number[];
  refusedReconnects: number[];
  paths: Map<string, number>;
  /** frames (switch window, or the whole call for failover) */
  frames: {
    sent: number;
    receivedOld: number;
    receivedNew: number;
    both: number;
    lost: number;
    rawInWindow: number;
    platformDropped: number;
    callsWithLoss: number;
  };
}

function firstMediaAfter(call: CallState, at: number | undefined): number | undefined {
  return at === undefined ? undefined : call.agentMediaAt.find((media) => media >= at);
}

function analyse(records: CallRecord[]): Figures {
  const figures: Figures = {
    calls: records.length,
    ok: 0,
    failures: [],
    notes: [],
    request: [],
    durationMs: [],
    nextTurn: [],
    nextTurnSimulator: [],
    nextTurnPlatform: [],
    firstTurn: [],
    toUpgrade: [],
    toSetup: [],
    toAudio: [],
    toAudioAfterSpeech: [],
    historyDurationMs: [],
    refusedReconnects: [],
    paths: new Map(),
    frames: { sent: 0, receivedOld: 0, receivedNew: 0, both: 0, lost: 0, rawInWindow: 0, platformDropped: 0, callsWithLoss: 0 },
  };
  for (const record of records) {
    const { call } = record;
    const accepted = record.connections.filter((connection) => connection.refusedWithStatus === null);
    const first = accepted[0];
    if (first && first.provider !== "openai") figures.notes.push(`${call.key}: started on ${first.provider}, not openai`);
    if (!record.answeredBeforeAction)
      figures.notes.push(`${call.key}: the first turn was not answered before the ${record.phase === "switch" ? "switch" : "drop"}`);
    if (record.failure) {
      figures.failures.push(record.failure);
      continue;
    }
    figures.ok++;
    const old = accepted.filter((connection) => connection.provider === "openai");
    const gemini = accepted.find((connection) => connection.provider === "gemini");
    const actionAt = record.actionAt!;
    // The first turn, on openai: end of hello → first agent audio on the Twilio socket.
    const helloEnd = call.sentAt[HELLO_END_FRAME]!;
    const firstAudio = call.agentMediaAt[0];
    if (firstAudio !== undefined && firstAudio < actionAt) figures.firstTurn.push(firstAudio - helloEnd);
    // The next turn, on gemini: end of the caller's utterance → first gemini agent audio on the Twilio socket.
    const nextEnd = call.sentAt[NEXT_END_FRAME]!;
    const geminiChunk = gemini?.audioOut.chunkTimes.entries[0]?.at;
    const geminiAudio = firstMediaAfter(call, geminiChunk);
    if (geminiAudio !== undefined && geminiChunk !== undefined) {
      figures.nextTurn.push(geminiAudio - nextEnd);
      figures.nextTurnSimulator.push(geminiChunk - nextEnd);
      figures.nextTurnPlatform.push(geminiAudio - geminiChunk);
    }
    const sent = call.nextFrame;
    const receivedOld = old.reduce((total, connection) => total + connection.audioIn.frames, 0);
    const receivedNew = gemini?.audioIn.frames ?? 0;
    if (record.counters) figures.frames.platformDropped += record.counters.callerFramesDropped ?? 0;
    if (record.phase === "switch") {
      figures.request.push(record.responseAt! - actionAt);
      const duration = record.response?.body.durationMs;
      if (typeof duration === "number") figures.durationMs.push(duration);
      // Frames sent in the window [request, response + 2 s], by index. The old connection heard frames 0..m-1 (1:1,
      // in order); the new one the last G frames of the call (the held frames from the switch's start, then live).
      const windowEnd = record.responseAt! + FRAME_WINDOW_AFTER_RESPONSE_MS;
      let a = -1;
      let b = -1;
      for (let index = 0; index < sent; index++) {
        const at = call.sentAt[index]!;
        if (at >= actionAt && at <= windowEnd) {
          if (a < 0) a = index;
          b = index;
        }
      }
      const newFrom = sent - receivedNew;
      let lostHere = 0;
      for (let index = a; a >= 0 && index <= b; index++) {
        const byOld = index < receivedOld;
        const byNew = index >= newFrom;
        figures.frames.sent++;
        if (byOld) figures.frames.receivedOld++;
        if (byNew) figures.frames.receivedNew++;
        if (byOld && byNew) figures.frames.both++;
        if (!byOld && !byNew) lostHere++;
      }
      figures.frames.lost += lostHere;
      if (lostHere > 0) figures.frames.callsWithLoss++;
      // The brief's literal count: receipts by the providers (old + new) within the same window of time.
      figures.frames.rawInWindow += [...old, ...(gemini ? [gemini] : [])]
        .flatMap((connection) => connection.audioIn.frameTimes.entries)
        .filter((at) => at >= actionAt && at <= windowEnd).length;
      if (receivedOld + receivedNew < sent)
        figures.notes.push(
          `${call.key}: ${sent - receivedOld - receivedNew} fewer frames received (old + new) than sent over the whole call`,
        );
    } else {
      if (gemini) {
        figures.toUpgrade.push(gemini.connectedAt - actionAt);
        const setup = gemini.serverMessages.entries.find((message) => message.type === "setupComplete")?.at;
        if (setup !== undefined) figures.toSetup.push(setup - actionAt);
      }
      if (geminiAudio !== undefined) figures.toAudio.push(geminiAudio - actionAt);
      if (geminiAudio !== undefined) figures.toAudioAfterSpeech.push(geminiAudio - nextEnd);
      const refused = record.connections.filter(
        (connection) => connection.provider === "openai" && connection.refusedWithStatus !== null && connection.connectedAt >= actionAt,
      );
      figures.refusedReconnects.push(refused.length);
      const failoverEntry = record.switchHistory.find((entry) => entry.reason === "auto_failover");
      if (typeof failoverEntry?.durationMs === "number") figures.historyDurationMs.push(failoverEntry.durationMs);
      const path =
        `drop → ${refused.length} refused openai reconnect${refused.length === 1 ? "" : "s"}` +
        (refused.length
          ? ` (at +${refused.map((connection) => ((connection.connectedAt - actionAt) / 1000).toFixed(1)).join(", +")} s)`
          : "") +
        ` → ${gemini ? "gemini" : "no gemini"}` +
        (failoverEntry ? ` (${String(failoverEntry.reason)}, ${String(failoverEntry.outcome)})` : " (no auto_failover in switch-history)");
      figures.paths.set(path.replace(/\(at [^)]*\)/, "(at …)"), (figures.paths.get(path.replace(/\(at [^)]*\)/, "(at …)")) ?? 0) + 1);
      if (figures.paths.size <= 3 && figures.notes.length < 40) figures.notes.push(`${call.key}: ${path}`);
      figures.frames.sent += sent;
      figures.frames.receivedOld += receivedOld;
      figures.frames.receivedNew += receivedNew;
      const lost = Math.max(0, sent - receivedOld - receivedNew);
      figures.frames.lost += lost;
      if (lost > 0) figures.frames.callsWithLoss++;
    }
  }
  return figures;
}

// ── main ───────────────────────────────────────────────────────────────────────────────────────────────────

const commandLine = `node ${process.argv
  .slice(1)
  .map((arg) => arg.replace(`${process.cwd()}/`, ""))
  .join(" ")}`;
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
process.env.WRANGLER_SEND_METRICS ??= "false";
if (existsSync("/dev/shm")) process.env.TMPDIR = mkdtempSync("/dev/shm/switchboard-bench-");

const simulator = await startProviderSimulator();
const base = await testSettings(() => providerSimulatorSettings(simulator));
// Production's provider resilience, not the test suite's fast time scale: reconnect 1 s base × 2ⁿ, 5 attempts; the
// breaker opens after 5 failures for 60 s; 15 s reply timeout; the fleet registry asked at most every 10 s.
for (const name of [
  "PROVIDER_RECONNECT_BASE_MS",
  "PROVIDER_RECONNECT_ATTEMPTS",
  "PROVIDER_BREAKER_FAILURES",
  "PROVIDER_BREAKER_OPEN_SECONDS",
  "PROVIDER_RESPONSE_TIMEOUT_MS",
  "PROVIDER_FLEET_CHECK_SECONDS",
])
  delete base[name];
/**
 * The failover phases inject a fault into every call; with the fleet registry's default thresholds the injected
 * openai failures would mark openai offline/unhealthy after the first call (new calls would then start on gemini) and
 * the slow failover turns would mark gemini unhealthy (later failovers would skip it for deepgram). The registry's
 * thresholds are relaxed so that each call meets the same fleet state; they play no part in the path measured.
 */
const FLEET_RELAXED = {
  PROVIDER_HEALTH_OFFLINE_AFTER: "100",
  PROVIDER_HEALTH_MIN_SUCCESS_RATE: "0",
  PROVIDER_HEALTH_LATENCY_WARNING_MS: "120000",
  PROVIDER_HEALTH_LATENCY_ERROR_MS: "120000",
};
const SETTINGS: Record<PhaseName, Record<string, string>> = {
  switch: {},
  failover: FLEET_RELAXED,
  "failover-breaker-1": { ...FLEET_RELAXED, PROVIDER_BREAKER_FAILURES: "1" },
  "failover-breaker-2": { ...FLEET_RELAXED, PROVIDER_BREAKER_FAILURES: "2" },
};

const results = new Map<PhaseName, Figures>();
let platform: LocalPlatform | undefined;
try {
  console.log(`\nProvider switches and failover in live Twilio calls (real Worker under wrangler, provider simulator) — ${commandLine}`);
  console.log(
    `Each call: caller-hello.wav (answered on openai), ${PAUSE_MS / 1000} s silence, then the action and caller-payment.wav at once, in real time; ` +
      `${CALLS} calls per phase, at most ${CONCURRENCY} at once; a fresh platform per phase.`,
  );
  for (const phase of RUN_PHASES) {
    const settings = { ...base, ...SETTINGS[phase] };
    console.log(
      `  phase ${phase}: ${
        Object.entries(SETTINGS[phase])
          .map(([name, value]) => `${name}=${value}`)
          .join(" ") || "production resilience settings"
      }…`,
    );
    const started = await startBenchPlatform(settings, { openai: NUMBER });
    platform = started.platform;
    const records: CallRecord[] = [];
    let next = 0;
    const workers = Array.from({ length: CONCURRENCY }, async (_, worker) => {
      await sleep(worker * 3_000); // staggered: the calls' actions do not coincide
      while (next < CALLS) {
        const index = next++;
        records.push(await runCall(phase, started.platform, started.api, simulator, index));
      }
    });
    await Promise.all(workers);
    await platform.stop();
    platform = undefined;
    const figures = analyse(records);
    results.set(phase, figures);
    console.log(`  ran ${phase}: ${figures.ok} ok, ${figures.failures.length} failed`);
  }
} finally {
  await platform?.stop();
  await simulator.stop();
  await stopBenchCarriers();
  if (process.env.TMPDIR?.startsWith("/dev/shm/switchboard-bench-")) rmSync(process.env.TMPDIR, { recursive: true, force: true });
}

const header = ["phase", "p50 ms", "p99 ms", "max ms", "count"];
const row = (label: string, values: number[]) => {
  const summary = summarize(values);
  return [label, ms(summary?.p50), ms(summary?.p99), ms(summary?.max), String(summary?.count ?? 0)];
};
const switchFigures = results.get("switch");
if (switchFigures) {
  console.log(
    table(
      "Switch openai → gemini (immediate) — target p99 ≤ 300 ms",
      ["figure", "p50 ms", "p99 ms", "max ms", "count"],
      [
        row("(a) request sent → HTTP response", switchFigures.request),
        row("(a) durationMs in the response", switchFigures.durationMs),
        row("(b) caller's next utterance ends → first gemini audio at Twilio", switchFigures.nextTurn),
        row("    of which: utterance end → simulator sends gemini's first chunk", switchFigures.nextTurnSimulator),
        row("    of which: gemini chunk sent → Twilio socket", switchFigures.nextTurnPlatform),
        row("baseline: hello ends → first openai audio at Twilio", switchFigures.firstTurn),
      ],
    ),
  );
  const frames = switchFigures.frames;
  console.log(
    table(
      "Caller frames from the switch request to 2 s after the response (target 0 lost)",
      [
        "sent",
        "heard by old (openai)",
        "heard by new (gemini)",
        "heard by both",
        "lost",
        "calls with loss",
        "receipts in the window (old + new, by time)",
        "platform callerFramesDropped (whole call)",
      ],
      [
        [
          String(frames.sent),
          String(frames.receivedOld),
          String(frames.receivedNew),
          String(frames.both),
          String(frames.lost),
          String(frames.callsWithLoss),
          String(frames.rawInWindow),
          String(frames.platformDropped),
        ],
      ],
    ),
  );
}
const failoverPhases = RUN_PHASES.filter((phase) => phase !== "switch");
if (failoverPhases.length) {
  const rows: string[][] = [];
  for (const phase of failoverPhases) {
    const figures = results.get(phase);
    if (!figures) continue;
    rows.push(row(`${phase}: drop → gemini upgrade accepted`, figures.toUpgrade));
    rows.push(row(`${phase}: drop → gemini setupComplete`, figures.toSetup));
    rows.push(row(`${phase}: drop → first gemini audio at Twilio`, figures.toAudio));
    rows.push(row(`${phase}: utterance end → first gemini audio`, figures.toAudioAfterSpeech));
    rows.push(row(`${phase}: switch-history durationMs`, figures.historyDurationMs));
  }
  console.log(
    table("Failover openai → gemini after the OpenAI socket is destroyed and reconnects are refused (503) — target ≤ 1.5 s", header, rows),
  );
  console.log(
    table(
      "Failover paths and caller frames (whole call)",
      ["phase", "path (calls)", "frames sent", "heard by openai", "heard by gemini", "lost", "calls with loss"],
      failoverPhases.flatMap((phase) => {
        const figures = results.get(phase);
        if (!figures) return [];
        return [...figures.paths].map(([path, count], index) => [
          index === 0 ? phase : "",
          `${path} (${count})`,
          index === 0 ? String(figures.frames.sent) : "",
          index === 0 ? String(figures.frames.receivedOld) : "",
          index === 0 ? String(figures.frames.receivedNew) : "",
          index === 0 ? String(figures.frames.lost) : "",
          index === 0 ? String(figures.frames.callsWithLoss) : "",
        ]);
      }),
    ),
  );
}
console.log(
  "\nHow the failover goes (durable-objects/voice/voice-session.ts): the destroyed socket → providerLost (breaker failure 1) →\n" +
    "connectWithRetries: attempt 0 at once, then after ~1, 2, 4, 8 s (base × 2ⁿ ± 20 %); once the next attempt would come more\n" +
    "than PROVIDER_FAILOVER_AFTER_MS (1 s) after the loss, failover() → switchTo(next in PROVIDER_ORDER, immediate) instead;\n" +
    "also when the breaker opens (PROVIDER_BREAKER_FAILURES; =1 opens it on the drop itself) or the 5 attempts run out.\n" +
    "The caller's frames meanwhile are held (≤ 500, 10 s) and delivered to gemini at the cut-over.\n" +
    "Settings: production resilience (PROVIDER_RECONNECT_BASE_MS 1000, _ATTEMPTS 5, PROVIDER_BREAKER_FAILURES 5, _OPEN_SECONDS 60,\n" +
    "PROVIDER_RESPONSE_TIMEOUT_MS 15000, PROVIDER_FLEET_CHECK_SECONDS 10) unless the phase says otherwise; the failover phases relax\n" +
    "the fleet registry's thresholds (OFFLINE_AFTER 100, MIN_SUCCESS_RATE 0, latency 120 s) so one call's injected failures do not\n" +
    "steer the next call. Frames: the old connection hears frames 0..m−1 in order, the new one the call's last G frames (held\n" +
    "from the switch's start, then live); a frame in neither is lost. Times: performance.timeOrigin + performance.now().",
);
for (const [phase, figures] of results) {
  for (const note of figures.notes.slice(0, 10)) console.log(`  ${phase}: ${note}`);
  if (figures.failures.length === 0) continue;
  const counts = new Map<string, number>();
  for (const failure of figures.failures) counts.set(failure.slice(0, 200), (counts.get(failure.slice(0, 200)) ?? 0) + 1);
  console.log(`\n${phase}: ${figures.failures.length} of ${figures.calls} calls failed:`);
  for (const [failure, count] of counts) console.log(`  ${count} × ${failure}`);
}
