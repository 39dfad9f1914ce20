/**
 * The call in progress, kept in the tab's sessionStorage so a reload can rejoin it: the platform keeps a web session
 * 30 s after its caller's socket closes (README "Sessions API"). Only the session id: nothing secret.
 */
const KEY = "switchboard.softphone.session";

export function rememberCall(sessionId: string): void {
  sessionStorage.setItem(KEY, sessionId);
}

export function forgetCall(): void {
  sessionStorage.removeItem(KEY);
}

export function callToRejoin(): string | null {
  return sessionStorage.getItem(KEY);
}
