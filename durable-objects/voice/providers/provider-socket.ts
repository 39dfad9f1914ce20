/**
 * Outbound WebSockets from the call's object to a provider: opened with fetch + `Upgrade` (the Workers way; such a
 * socket is already open when accept() returns), binary frames as ArrayBuffer. Outbound sockets never hibernate and
 * keep the object in memory for the call, which is what a live call needs anyway.
 */
export class ProviderRefusedError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ProviderRefusedError";
  }
}

/**
 * connect() failed after the upgrade, before the session was ready: the socket closed (`closeCode`), or the
 * provider never confirmed its setup in time (code "timeout"). One class for every adapter.
 */
export class ProviderSetupError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly closeCode: number | null = null,
  ) {
    super(message);
    this.name = "ProviderSetupError";
  }
}

export const CONNECT_TIMEOUT_MS = 10_000;

export async function openProviderSocket(url: string, headers: Record<string, string>): Promise<WebSocket> {
  const httpUrl = url.replace(/^ws(s?):\/\//, "http$1://");
  // The timeout guards the upgrade only: a signal still armed later would tear the established socket down.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), CONNECT_TIMEOUT_MS);
  let response: Response;
  try {
    response = await fetch(httpUrl, { headers: { ...headers, Upgrade: "websocket" }, signal: abort.signal });
  } catch (error) {
    throw new ProviderRefusedError(0, `connect failed: ${error instanceof Error ? error.name : "network"}`);
  } finally {
    clearTimeout(timer);
  }
  const socket = response.webSocket;
  if (response.status !== 101 || !socket) {
    await response.body?.cancel();
    throw new ProviderRefusedError(response.status, `upgrade refused with ${response.status}`);
  }
  socket.binaryType = "arraybuffer";
  socket.accept();
  return socket;
}
