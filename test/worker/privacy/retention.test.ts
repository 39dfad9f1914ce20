import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { RETENTION_SESSIONS_PER_RUN } from "../../../workers/privacy/retention.ts";
import { analyseEndedSessions, applyRetention } from "../../../workers/scheduled.ts";
import { createLogger } from "../../../workers/shared/logger.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";

/**
 * Retention (`retentionDays`) through the cron's own function: sessions ended longer ago than the tenant keeps lose
 * their transcript, analysis and recording objects, a run's share at a time and at most daily per tenant; recent
 * sessions, live ones and tenants without the setting keep everything. The sessions are written straight to D1 with
 * their times in the past (no waiting for days); the recordings as the recordings part stores them in R2.
 */
const DAY = 86_400_000;
const log = createLogger({ correlationId: "retention-test" });
const OLD_SESSIONS = RETENTION_SESSIONS_PER_RUN + 10;

let now: number;
let keeper: { tenantId: string; token: string };
let hoarder: string;
let old: string[];
let recent: string;
let live: string;
let hoarded: string;

async function session(tenantId: string, status: "active" | "ended", createdAt: number, endedAt: number | null): Promise<string> {
  const id = crypto.randomUUID();
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO sessions (id, tenant_id, channel, status, provider, correlation_id, created_at, ended_at) VALUES (?, ?, 'phone', ?, 'local', ?, ?, ?)",
    ).bind(id, tenantId, status, crypto.randomUUID(), createdAt, endedAt),
    env.DB.prepare(
      "INSERT INTO transcript_lines (id, tenant_id, session_id, seq, role, text, provider, occurred_at) VALUES (?, ?, ?, 1, 'caller', 'My card is on file', 'local', ?)",
    ).bind(`${id}:1`, tenantId, id, createdAt),
    env.DB.prepare(
      "INSERT INTO session_analysis (session_id, tenant_id, status, attempts, next_attempt_at, result, created_at, updated_at) VALUES (?, ?, 'ready', 1, 0, '{\"summary\":\"card\"}', ?, ?)",
    ).bind(id, tenantId, createdAt, createdAt),
    env.DB.prepare(
      "INSERT INTO recordings (id, tenant_id, session_id, r2_key, duration_ms, bytes, created_at) VALUES (?, ?, ?, ?, 1000, 48, ?)",
    ).bind(crypto.randomUUID(), tenantId, id, `recordings/${tenantId}/${id}/recording.wav`, createdAt),
  ]);
  await env.RECORDINGS.put(`recordings/${tenantId}/${id}/recording.wav`, new Uint8Array([82, 73, 70, 70]));
  return id;
}

async function contentOf(id: string) {
  const count = async (sql: string) => (await env.DB.prepare(sql).bind(id).first<{ n: number }>())!.n;
  const row = await env.DB.prepare("SELECT tenant_id, content_purged_at FROM sessions WHERE id = ?")
    .bind(id)
    .first<{ tenant_id: string; content_purged_at: number | null }>();
  return {
    lines: await count("SELECT count(*) AS n FROM transcript_lines WHERE session_id = ?"),
    analysis: await count("SELECT count(*) AS n FROM session_analysis WHERE session_id = ?"),
    recordings: (await env.RECORDINGS.list({ prefix: `recordings/${row!.tenant_id}/${id}` })).objects.length,
    recordingRows: await count("SELECT count(*) AS n FROM recordings WHERE session_id = ?"),
    purged: row!.content_purged_at !== null,
  };
}

const KEPT = { lines: 1, analysis: 1, recordings: 1, recordingRows: 1, purged: false };
const GONE = { lines: 0, analysis: 0, recordings: 0, recordingRows: 0, purged: true };

beforeAll(async () => {
  now = Date.now();
  keeper = { tenantId: await createTenant("Keeps two days"), token: "" };
  keeper.token = (await userWithToken(keeper.tenantId, "admin")).accessToken;
  const set = await api("/api/v1/tenant/settings", { method: "PATCH", token: keeper.token, body: { retentionDays: 2 } });
  expect(set.status).toBe(200);
  old = [];
  for (let i = 0; i < OLD_SESSIONS; i++) old.push(await session(keeper.tenantId, "ended", now - 3 * DAY - i * 60_000, now - 3 * DAY));
  recent = await session(keeper.tenantId, "ended", now - DAY, now - DAY + 60_000);
  // Still live after three days (a stuck call): retention never touches a live session.
  live = await session(keeper.tenantId, "active", now - 3 * DAY, null);
  hoarder = await createTenant("Keeps everything");
  hoarded = await session(hoarder, "ended", now - 300 * DAY, now - 300 * DAY);
}, 60_000);

describe("retention", () => {
  it("takes a run's share at a time, then rests for a day; keeps recent, live and other tenants' sessions", async () => {
    expect(await contentOf(old[0]!)).toEqual(KEPT);
    expect(await applyRetention(env, log, now)).toEqual({ tenants: 1, sessions: RETENTION_SESSIONS_PER_RUN });
    const afterFirst = await Promise.all(old.map(contentOf));
    expect(afterFirst.filter((content) => content.purged)).toHaveLength(RETENTION_SESSIONS_PER_RUN);

    expect(await applyRetention(env, log, now)).toEqual({ tenants: 1, sessions: OLD_SESSIONS - RETENTION_SESSIONS_PER_RUN });
    for (const id of old) expect(await contentOf(id)).toEqual(GONE);
    // Done for the day: the next runs leave the tenant alone.
    expect(await applyRetention(env, log, now)).toEqual({ tenants: 0, sessions: 0 });

    expect(await contentOf(recent)).toEqual(KEPT);
    expect(await contentOf(live)).toEqual(KEPT);
    expect(await contentOf(hoarded)).toEqual(KEPT);
    // The sessions themselves stay (calls and the books point at them).
    const rows = await env.DB.prepare("SELECT count(*) AS n FROM sessions WHERE tenant_id = ?")
      .bind(keeper.tenantId)
      .first<{ n: number }>();
    expect(rows!.n).toBe(OLD_SESSIONS + 2);
  });

  it("the analysis cron does not analyse a purged session again", async () => {
    await analyseEndedSessions(env, log, now);
    for (const id of old.slice(0, 5)) expect(await contentOf(id)).toEqual(GONE);
  });

  it("retentionDays is a whole number of days from 1, or null", async () => {
    for (const retentionDays of [0, 1.5, "30"]) {
      const response = await api("/api/v1/tenant/settings", { method: "PATCH", token: keeper.token, body: { retentionDays } });
      expect(response.status).toBe(400);
    }
    const cleared = await api("/api/v1/tenant/settings", { method: "PATCH", token: keeper.token, body: { retentionDays: null } });
    expect(((await cleared.json()) as { retentionDays: unknown }).retentionDays).toBeNull();
  });
});
