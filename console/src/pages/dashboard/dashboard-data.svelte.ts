import { api, query } from "../../lib/api.ts";
import { tabs } from "../../lib/tabs.ts";
import {
  type CallSummary,
  ENDED_CALL_STATUSES,
  type Page,
  type ProviderHealth,
  type SessionDetail,
  type SessionSummary,
} from "../session/api-types.ts";

/** How often the dashboard reads the API while its tab is visible. */
const POLL_MS = 5_000;
/** Live rows read in detail (their call and escalations); more active sessions than this are listed without them. */
const DETAILED_ROWS = 25;
/** Today's calls are counted a page of 100 at a time, at most this many pages ("500+"). */
const TODAY_PAGES = 5;

export interface ActiveRow {
  session: SessionSummary;
  detail: SessionDetail | null;
}

export interface Figures {
  activeSessions: number;
  activeSessionsMore: boolean;
  activeCalls: number;
  callsToday: number;
  failedToday: number;
  todayMore: boolean;
  escalations: number;
}

/**
 * What the dashboard shows, read from the public API every few seconds while the tab is visible (a hidden tab
 * asks nothing), and at once when another tab says a session changed.
 */
export class DashboardData {
  rows = $state<ActiveRow[]>([]);
  figures = $state<Figures | null>(null);
  providers = $state<ProviderHealth[] | null>(null);
  sessionsError = $state<string | null>(null);
  providersError = $state<string | null>(null);
  updatedAt = $state<number | null>(null);
  now = $state(Date.now());
  private timer: ReturnType<typeof setInterval> | undefined;
  private clock: ReturnType<typeof setInterval> | undefined;
  private stopListening: (() => void) | undefined;
  private inFlight = false;
  private readonly onVisibility = () => {
    if (document.visibilityState === "visible") void this.refresh();
  };

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") void this.refresh();
    }, POLL_MS);
    this.clock = setInterval(() => {
      this.now = Date.now();
    }, 1_000);
    document.addEventListener("visibilitychange", this.onVisibility);
    this.stopListening = tabs.listen((message) => {
      if (message.type === "session.changed") void this.refresh();
    });
  }

  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.clock);
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.stopListening?.();
  }

  async refresh(): Promise<void> {
    if (this.inFlight) return;
    this.inFlight = true;
    try {
      await Promise.all([this.loadSessions(), this.loadProviders()]);
      this.updatedAt = Date.now();
      this.now = this.updatedAt;
    } finally {
      this.inFlight = false;
    }
  }

  private async loadSessions(): Promise<void> {
    try {
      const [active, today] = await Promise.all([
        api<Page<SessionSummary>>("GET", `/api/v1/sessions${query({ status: "active", limit: 100 })}`),
        this.callsToday(),
      ]);
      const details = await Promise.all(
        active.items
          .slice(0, DETAILED_ROWS)
          .map((session) => api<SessionDetail>("GET", `/api/v1/sessions/${encodeURIComponent(session.id)}`).catch(() => null)),
      );
      this.rows = active.items.map((session, index) => ({ session, detail: details[index] ?? null }));
      this.figures = {
        activeSessions: active.items.length,
        activeSessionsMore: active.nextCursor !== null,
        activeCalls: details.filter((detail) => detail?.call && !ENDED_CALL_STATUSES.includes(detail.call.status)).length,
        callsToday: today.calls.length,
        failedToday: today.calls.filter((call) => call.status === "failed").length,
        todayMore: today.more,
        escalations: details.reduce((sum, detail) => sum + (detail?.escalations.length ?? 0), 0),
      };
      this.sessionsError = null;
    } catch (error) {
      this.sessionsError = error instanceof Error ? error.message : String(error);
    }
  }

  private async callsToday(): Promise<{ calls: CallSummary[]; more: boolean }> {
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    const calls: CallSummary[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < TODAY_PAGES; page++) {
      const answer: Page<CallSummary> = await api<Page<CallSummary>>(
        "GET",
        `/api/v1/calls${query({ since: midnight.toISOString(), limit: 100, cursor })}`,
      );
      calls.push(...answer.items);
      cursor = answer.nextCursor;
      if (cursor === null) return { calls, more: false };
    }
    return { calls, more: true };
  }

  private async loadProviders(): Promise<void> {
    try {
      const health = await api<{ providers: ProviderHealth[] }>("GET", "/api/v1/providers/health");
      this.providers = health.providers;
      this.providersError = null;
    } catch (error) {
      this.providersError = error instanceof Error ? error.message : String(error);
    }
  }
}
