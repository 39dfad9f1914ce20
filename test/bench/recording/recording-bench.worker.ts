/**
 * The recording's own cost in workerd (test/bench/recording.bench.ts loads this as a Worker entry): N sessions'
 * `CallRecording` fed a Twilio call's traffic in real time — per 20 ms a caller frame, an agent frame with its mark
 * and the mark's echo — with its own upload timer and R2 (local, on disk), then every session's end (`finish`: the
 * last part and the D1 row). `?recording=off` feeds the same traffic to sessions that do not record, so the
 * difference is what recording adds.
 */

import { encodeMulaw } from "../../../durable-objects/media/audio/g711.ts";
import { encodeBase64 } from "../../../durable-objects/media/audio/pcm16.ts";
import { CallRecording } from "../../../durable-objects/recording/call-recording.ts";
import { createLogger } from "../../../workers/shared/logger.ts";
import { TENANT_SETTINGS_DEFAULTS } from "../../../workers/shared/tenant-settings.ts";

interface BenchEnv {
  RECORDINGS: R2Bucket;
  DB: D1Database;
}

const FRAMES_PER_SECOND = 50;
/** The row's table as the migrations make it (without the tenant's foreign key: this database holds no tenants). */
const SCHEMA = [
  "CREATE TABLE IF NOT EXISTS recordings (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, session_id TEXT NOT NULL, r2_key TEXT NOT NULL, duration_ms INTEGER NOT NULL, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL)",
  "CREATE UNIQUE INDEX IF NOT EXISTS recordings_session_idx ON recordings (tenant_id, session_id)",
];

/** A second of µ-law frames (a tone), base64 as a carrier sends them. */
function frames(): string[] {
  return Array.from({ length: FRAMES_PER_SECOND }, (_, frame) => {
    const samples = new Int16Array(160);
    for (let i = 0; i < 160; i++) samples[i] = Math.round(6000 * Math.sin((2 * Math.PI * 440 * (frame * 160 + i)) / 8000));
    const codes = new Uint8Array(160);
    encodeMulaw(samples, codes);
    return encodeBase64(codes);
  });
}

export default {
  async fetch(request: Request, env: BenchEnv, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const calls = Number(url.searchParams.get("calls") ?? "50");
    const seconds = Number(url.searchParams.get("seconds") ?? "30");
    const recording = url.searchParams.get("recording") === "off" ? "off" : "on";
    for (const statement of SCHEMA) await env.DB.prepare(statement).run();
    const log = createLogger({ bench: "recording" });
    const run = crypto.randomUUID();
    const sessions = Array.from(
      { length: calls },
      (_, index) =>
        new CallRecording({
          env: env as unknown as Env,
          session: () => ({ tenantId: "bench-tenant", sessionId: `${run}-${index}` }),
          tenantSettings: async () => ({ ...TENANT_SETTINGS_DEFAULTS, recording }),
          numberSetting: () => null,
          predecessorPossible: () => false,
          waitUntil: (task) => ctx.waitUntil(task),
          log: () => log,
        }),
    );
    await Promise.all(sessions.map((session) => session.learn()));
    const payloads = frames();
    const format = { encoding: "pcmu", sampleRate: 8000 } as const;
    const start = Date.now();
    for (let frame = 0; frame < seconds * FRAMES_PER_SECOND; frame++) {
      const payload = payloads[frame % FRAMES_PER_SECOND]!;
      const mark = `m${frame}`;
      for (const session of sessions) {
        session.caller(payload, format);
        session.agent(payload, format, "item", mark);
        session.heard(mark);
      }
      // Real time: the upload timer fires between frames as it does in a call.
      const due = start + (frame + 1) * (1000 / FRAMES_PER_SECOND);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
    }
    await Promise.all(sessions.map((session) => session.finish()));
    const listed = await env.RECORDINGS.list({ prefix: "recordings/bench-tenant/" });
    return Response.json({ relayedFrames: 2 * calls * seconds * FRAMES_PER_SECOND, objects: listed.objects.length });
  },
};
