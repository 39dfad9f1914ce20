import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { readWav, samplesToMs, writeWav } from "./carriers/audio.ts";
import { SimulatorControl } from "./carriers/control.ts";
import { type FakeTelnyxApi, startFakeTelnyxApi } from "./carriers/fake-telnyx-api.ts";
import { type FakeTwilioApi, startFakeTwilioApi } from "./carriers/fake-twilio-api.ts";
import { telnyxSigner } from "./carriers/signing.ts";
import { type CallReport, DEFAULT_CALLED, DEFAULT_CALLER, simulateCall } from "./carriers/simulate-call.ts";

/**
 * `npm run simulate -- --carrier twilio|telnyx --audio caller.wav [--audio more.wav …] [options]`
 *
 * Places a signed inbound call against a running platform (e.g. `npm run dev`), streams the WAV files in real
 * time as the caller's turns, records what the agent says, and prints the timeline and per-turn latency.
 * Exits 0 when the call worked and the agent spoke, 1 otherwise.
 */
const USAGE = `usage: npm run simulate -- --carrier twilio|telnyx --audio file.wav [options]
  --audio <file.wav>       caller turn (repeat for several turns); PCM16 WAV, any rate (resampled to 8 kHz)
  --to <+1…>               called number, a number registered for a tenant (default ${DEFAULT_CALLED})
  --from <+1…>             caller number (default ${DEFAULT_CALLER})
  --base <url>             where the platform is reachable (default http://localhost:8787)
  --public-url <url>       the platform's PUBLIC_BASE_URL if different from --base (signatures cover it)
  --out <file.wav>         write what the caller heard
  --dtmf <digits>          press these keys after the last turn, e.g. 12#
  --speed <n>              media time runs n× real time (default 1)
  --pause-ms <ms>          caller silence before each turn (default 1500)
  --linger-ms <ms>         keep listening after both sides went quiet (default 4000)
  --barge-in               speak without waiting for the agent to finish
  --max-seconds <s>        hang up after this long at the latest (default 120)
  --telnyx-api-port <p>    port of the fake Telnyx API this command starts (default 8789)
  --twilio-api-port <p>    also start a fake Twilio REST API on this port (so platform hangups reach the call)
  --reorder <n>            Telnyx: shuffle media frames within blocks of n
  --duplicate-every <n>    Telnyx: send every nth media frame twice
  --json                   print the report as JSON instead of the timeline
Credentials come from the environment (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TELNYX_API_KEY, TELNYX_CONNECTION_ID),
else from .dev.vars in the current directory.`;

const { values: args } = parseArgs({
  options: {
    carrier: { type: "string" },
    audio: { type: "string", multiple: true },
    to: { type: "string" },
    from: { type: "string" },
    base: { type: "string", default: "http://localhost:8787" },
    "public-url": { type: "string" },
    out: { type: "string" },
    dtmf: { type: "string" },
    speed: { type: "string", default: "1" },
    "pause-ms": { type: "string" },
    "linger-ms": { type: "string" },
    "barge-in": { type: "boolean", default: false },
    "max-seconds": { type: "string", default: "120" },
    "telnyx-api-port": { type: "string", default: "8789" },
    "twilio-api-port": { type: "string" },
    reorder: { type: "string" },
    "duplicate-every": { type: "string" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(1);
}

function numberArg(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) fail(`--${name} must be a non-negative number`);
  return parsed;
}

/** Settings by the contract's names: the environment wins over .dev.vars (KEY=value lines, # comments). */
function loadSettings(): (name: string) => string | undefined {
  const fromFile = new Map<string, string>();
  if (existsSync(".dev.vars")) {
    for (const line of readFileSync(".dev.vars", "utf8").split(/\r?\n/)) {
      const match = /^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line);
      if (match) fromFile.set(match[1]!, match[2]!.replace(/^(["'])(.*)\1$/, "$2"));
    }
  }
  return (name) => process.env[name] || fromFile.get(name) || undefined;
}

function printReport(report: CallReport): void {
  console.log(`\n${report.carrier} call ${report.callId}${report.sessionId ? ` (session ${report.sessionId})` : ""}`);
  for (const entry of report.timeline) {
    console.log(`  ${`+${Math.round(entry.atMs)}`.padStart(7)} ms  ${entry.kind.padEnd(16)} ${entry.detail}`);
  }
  console.log("\nturns:");
  for (const turn of report.turns) {
    const latency = turn.latencyMs === undefined ? "no agent audio after it" : `${Math.round(turn.latencyMs)} ms`;
    console.log(`  caller turn ${turn.utterance} ended at ${Math.round(turn.speechEndMs)} ms → first agent audio: ${latency}`);
  }
  const { stats } = report;
  console.log(
    `\nframes sent ${stats.mediaFramesSent}, media received ${stats.mediaMessagesReceived}, marks ${stats.marksPlayed}/${stats.marksReceived} echoed, clears ${stats.clears}; ` +
      `heard ${(stats.agentAudioMs / 1000).toFixed(1)} s of agent audio; final status ${report.finalStatus}`,
  );
  for (const error of report.errors) console.log(`ERROR ${error}`);
}

async function main(): Promise<number> {
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const carrier = args.carrier;
  if (carrier !== "twilio" && carrier !== "telnyx") fail("--carrier must be twilio or telnyx");
  if (!args.audio?.length) fail("--audio is required");
  const utterances = args.audio.map((file) => {
    try {
      return readWav(readFileSync(file));
    } catch (error) {
      return fail(`${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  const setting = loadSettings();
  const baseUrl = args.base.replace(/\/+$/, "");
  const publicBaseUrl = args["public-url"]?.replace(/\/+$/, "");
  const control = new SimulatorControl();
  control.setPlatform({ baseUrl, ...(publicBaseUrl ? { publicBaseUrl } : {}) });
  const stops: Array<() => Promise<void>> = [];

  let twilio: { accountSid: string; authToken: string; api?: FakeTwilioApi } | undefined;
  let telnyxApi: FakeTelnyxApi | undefined;
  const signer = telnyxSigner();
  if (carrier === "twilio") {
    const accountSid = setting("TWILIO_ACCOUNT_SID");
    const authToken = setting("TWILIO_AUTH_TOKEN");
    if (!accountSid || !authToken) fail("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set (environment or .dev.vars)");
    twilio = { accountSid, authToken };
    const port = numberArg("twilio-api-port", args["twilio-api-port"]);
    if (port !== undefined) {
      twilio.api = await startFakeTwilioApi({ accountSid, authToken, control, port });
      stops.push(() => twilio!.api!.close());
      console.log(`fake Twilio REST API: TWILIO_API_BASE=${twilio.api.url}`);
    }
  } else {
    const apiKey = setting("TELNYX_API_KEY");
    if (!apiKey) fail("TELNYX_API_KEY must be set (environment or .dev.vars): the fake Telnyx API accepts the platform's key");
    const configuredKey = setting("TELNYX_PUBLIC_KEY");
    if (configuredKey && configuredKey !== signer.publicKeyBase64) {
      console.warn(`warning: TELNYX_PUBLIC_KEY is ${configuredKey}, but webhooks are signed with ${signer.publicKeyBase64}`);
    }
    telnyxApi = await startFakeTelnyxApi({ apiKey, control, signer, port: numberArg("telnyx-api-port", args["telnyx-api-port"]) ?? 8789 });
    stops.push(() => telnyxApi!.close());
    console.log(`fake Telnyx Call Control API: the platform must run with TELNYX_API_BASE=${telnyxApi.url}`);
    const configuredBase = setting("TELNYX_API_BASE");
    const configured = configuredBase && URL.canParse(configuredBase) ? new URL(configuredBase) : undefined;
    const pointsHere =
      configured && ["localhost", "127.0.0.1"].includes(configured.hostname) && configured.port === new URL(telnyxApi.url).port;
    if (configuredBase && !pointsHere) {
      console.warn(`warning: TELNYX_API_BASE is ${configuredBase}; the platform's commands will not reach this simulator`);
    }
  }

  const pauseMs = numberArg("pause-ms", args["pause-ms"]);
  const lingerMs = numberArg("linger-ms", args["linger-ms"]);
  const reorderWindow = numberArg("reorder", args.reorder);
  const duplicateEvery = numberArg("duplicate-every", args["duplicate-every"]);
  const speed = numberArg("speed", args.speed) ?? 1;
  if (speed <= 0) fail("--speed must be positive");
  try {
    const report = await simulateCall({
      carrier,
      baseUrl,
      ...(publicBaseUrl ? { publicBaseUrl } : {}),
      ...(args.from ? { from: args.from } : {}),
      ...(args.to ? { to: args.to } : {}),
      utterances,
      speed,
      maxDurationMs: (numberArg("max-seconds", args["max-seconds"]) ?? 120) * 1000,
      waitForAgent: !args["barge-in"],
      ...(pauseMs === undefined ? {} : { pauseMs }),
      ...(lingerMs === undefined ? {} : { lingerMs }),
      ...(args.dtmf ? { dtmf: args.dtmf } : {}),
      ...(twilio ? { twilio } : {}),
      ...(telnyxApi
        ? {
            telnyx: {
              api: telnyxApi,
              signer,
              ...(setting("TELNYX_CONNECTION_ID") ? { connectionId: setting("TELNYX_CONNECTION_ID")! } : {}),
              media: {
                ...(reorderWindow === undefined ? {} : { reorderWindow }),
                ...(duplicateEvery === undefined ? {} : { duplicateEvery }),
              },
            },
          }
        : {}),
    });
    if (args.out) writeFileSync(args.out, writeWav(report.receivedAudio));
    if (args.json) {
      console.log(
        JSON.stringify({ ...report, receivedAudio: undefined, receivedAudioMs: samplesToMs(report.receivedAudio.length) }, null, 2),
      );
    } else {
      printReport(report);
    }
    if (!report.agentSpoke) console.log("the agent never sent audio");
    if (args.out) console.log(`agent audio written to ${args.out}`);
    return report.ok && report.agentSpoke ? 0 : 1;
  } finally {
    for (const stop of stops) await stop();
  }
}

process.exitCode = await main();
