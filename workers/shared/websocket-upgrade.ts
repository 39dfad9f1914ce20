/** Whether a request asks to become a WebSocket (the `Upgrade` header, case-insensitively). */
export const isWebSocketUpgrade = (headers: Headers): boolean => headers.get("Upgrade")?.toLowerCase() === "websocket";
