/** Whether a request asks to become a WebSocket (the `Upgrade` header, case-insensitively). */
export const isWebSocketUpgrade = (headers: Headers): boolean => headers.get("Upgrade")?.toLowerCase() === "websocket";

/** Closes a socket that may already be closing or closed (close() then throws, and there is nothing left to do). */
export function closeQuietly(socket: WebSocket | null | undefined, code: number, reason: string): void {
  try {
    socket?.close(code, reason);
  } catch {
    // Already closing or closed.
  }
}

/** Codes a peer's close may be answered with (1005, 1006 and 1015 are reserved for reporting). */
export function sendableCloseCode(code: number): number {
  return code >= 1000 && code <= 4999 && code !== 1004 && code !== 1005 && code !== 1006 && code !== 1015 ? code : 1000;
}
