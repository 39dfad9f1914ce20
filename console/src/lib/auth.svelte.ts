import { decodeJwt } from "jose";
import { type TabMessage, tabs } from "./tabs.ts";

/**
 * The signed-in user's tokens, shared by every tab of the console.
 *
 * - Kept in this tab's sessionStorage (a reload keeps the user signed in; closing the tab forgets them) and never in
 *   a URL or a log.
 * - A new tab asks the open ones for the tokens over BroadcastChannel; sign-in, refresh and logout are broadcast,
 *   so every tab follows (logging out in one logs out all).
 * - The access token is refreshed a minute before it expires. Refresh tokens rotate on every use and presenting a
 *   spent one revokes the whole family, so only one tab refreshes at a time (a Web Lock) and a tab that waited for the
 *   lock uses the tokens the other tab got instead of refreshing again.
 * - A refresh that fails without being refused (rate-limited, offline, a 5xx) is tried again after the server's
 *   Retry-After, or after a doubling wait: never at once, which would hammer a limiter that counts every attempt.
 */
export interface Tokens {
  accessToken: string;
  refreshToken: string;
  /** Epoch ms when the access token expires. */
  expiresAt: number;
}

export interface Principal {
  userId: string;
  tenantId: string;
  role: string;
}

const STORAGE_KEY = "switchboard.tokens";
const REFRESH_AHEAD_MS = 60_000;
const RETRY_FIRST_MS = 2_000;
const RETRY_MAX_MS = 60_000;

class Auth {
  tokens = $state<Tokens | null>(readStored());
  /** Set when the session ended by itself (expired, revoked elsewhere), for the sign-in page to say why. */
  endedBecause = $state<string | null>(null);
  readonly principal = $derived(this.tokens ? principalOf(this.tokens.accessToken) : null);
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private failedRefreshes = 0;
  private inflight: Promise<void> | null = null;

  constructor() {
    tabs.listen((message) => this.onTabMessage(message));
    if (this.tokens) this.schedule();
    else tabs.post({ type: "auth.ask" });
  }

  async login(email: string, password: string): Promise<void> {
    const tokens = await tokenRequest("/api/v1/auth/login", { email, password });
    this.adopt(tokens);
    tabs.post({ type: "auth.tokens", tokens });
  }

  /** Logs out here and in every other tab; the server revokes this token and its refresh family. */
  async logout(): Promise<void> {
    await this.signOutEverywhere("/api/v1/auth/logout");
  }

  /** Cuts off every token of this user, on every device. */
  async revokeAll(): Promise<void> {
    await this.signOutEverywhere("/api/v1/auth/revoke-all");
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    const current = this.tokens;
    if (!current) throw new SignedOut();
    if (current.expiresAt - Date.now() > REFRESH_AHEAD_MS) return current.accessToken;
    // While a failed refresh waits for its retry, a token that has not expired yet still serves.
    if (this.failedRefreshes === 0 || current.expiresAt <= Date.now()) {
      try {
        await this.refresh();
      } catch (error) {
        if (current.expiresAt <= Date.now()) throw error;
      }
    }
    if (!this.tokens) throw new SignedOut();
    return this.tokens.accessToken;
  }

  /** The server refused the token (revoked, user disabled): this tab and the others sign out. */
  sessionEnded(reason: string): void {
    this.forget(reason);
    tabs.post({ type: "auth.logout", reason });
  }

  /** One refresh at a time per tab: callers that arrive while one is under way share its outcome. */
  refresh(): Promise<void> {
    this.inflight ??= this.refreshOnce().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async refreshOnce(): Promise<void> {
    const spent = this.tokens?.refreshToken;
    if (!spent) return;
    await withRefreshLock(async () => {
      // Another tab may have refreshed while this one waited for the lock: its tokens arrived by broadcast.
      if (!this.tokens || this.tokens.refreshToken !== spent) return;
      try {
        const tokens = await tokenRequest("/api/v1/auth/refresh", { refreshToken: spent });
        this.adopt(tokens);
        tabs.post({ type: "auth.tokens", tokens });
      } catch (error) {
        if (error instanceof TokenRefused) this.sessionEnded("Your session ended. Please sign in again.");
        else throw error;
      }
    });
  }

  private async signOutEverywhere(path: string): Promise<void> {
    const token = this.tokens?.accessToken;
    this.forget(null);
    tabs.post({ type: "auth.logout", reason: null });
    if (token) await fetch(path, { method: "POST", headers: { Authorization: `Bearer ${token}` } }).catch(() => undefined);
  }

  private onTabMessage(message: TabMessage): void {
    // A snapshot: the state is a proxy, which BroadcastChannel cannot clone.
    if (message.type === "auth.ask" && this.tokens) tabs.post({ type: "auth.tokens", tokens: $state.snapshot(this.tokens) });
    else if (message.type === "auth.tokens") this.adopt(message.tokens);
    else if (message.type === "auth.logout") this.forget(message.reason);
  }

  private adopt(tokens: Tokens): void {
    this.tokens = tokens;
    this.failedRefreshes = 0;
    this.endedBecause = null;
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(tokens));
    this.schedule();
  }

  private forget(reason: string | null): void {
    clearTimeout(this.refreshTimer);
    this.failedRefreshes = 0;
    this.tokens = null;
    this.endedBecause = reason;
    sessionStorage.removeItem(STORAGE_KEY);
  }

  private schedule(): void {
    clearTimeout(this.refreshTimer);
    if (!this.tokens) return;
    this.refreshAfter(Math.max(0, this.tokens.expiresAt - Date.now() - REFRESH_AHEAD_MS));
  }

  private retryLater(error: unknown): void {
    if (!this.tokens) return;
    const doubling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.failedRefreshes);
    this.failedRefreshes++;
    this.refreshAfter(error instanceof TokenRequestFailed && error.retryAfterMs !== null ? error.retryAfterMs : doubling);
  }

  private refreshAfter(wait: number): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => void this.refresh().catch((error: unknown) => this.retryLater(error)), wait);
  }
}

export class SignedOut extends Error {
  constructor() {
    super("Not signed in");
  }
}

export class TokenRefused extends Error {}

/** Not a refusal: the server could not answer now (429, 5xx); `retryAfterMs` is its Retry-After when it sent one. */
class TokenRequestFailed extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number | null,
  ) {
    super(message);
  }
}

async function tokenRequest(path: string, body: unknown): Promise<Tokens> {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const payload = (await response.json().catch(() => null)) as {
    accessToken?: string;
    refreshToken?: string;
    expiresIn?: number;
    error?: { message?: string };
  } | null;
  if (response.status === 401) throw new TokenRefused(payload?.error?.message ?? "Wrong email or password");
  if (!response.ok || !payload?.accessToken || !payload.refreshToken || !payload.expiresIn) {
    throw new TokenRequestFailed(payload?.error?.message ?? `Sign-in failed (HTTP ${response.status})`, retryAfterMs(response));
  }
  return { accessToken: payload.accessToken, refreshToken: payload.refreshToken, expiresAt: Date.now() + payload.expiresIn * 1000 };
}

function retryAfterMs(response: Response): number | null {
  const seconds = Number(response.headers.get("Retry-After"));
  return response.headers.has("Retry-After") && Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, RETRY_MAX_MS) : null;
}

async function withRefreshLock(work: () => Promise<void>): Promise<void> {
  if (!("locks" in navigator)) return work();
  await navigator.locks.request("switchboard.refresh", work);
}

function readStored(): Tokens | null {
  try {
    // An expired access token is kept: its refresh token (30 days) gets a new one on first use.
    return JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null") as Tokens | null;
  } catch {
    return null;
  }
}

function principalOf(accessToken: string): Principal | null {
  try {
    const claims = decodeJwt(accessToken);
    return { userId: String(claims.sub), tenantId: String(claims.tenant), role: String(claims.role) };
  } catch {
    return null;
  }
}

export const auth = new Auth();
