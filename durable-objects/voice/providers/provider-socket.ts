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
  // The timeout races the upgrade rather than abort it through the fetch's signal: workerd wraps a socket opened with
  // a signal (its AbortableWebSocket), and every frame either way then passes its canceler for the call's life.
  const upgrade = fetch(httpUrl, { headers: { ...headers, Upgrade: "websocket" } });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), CONNECT_TIMEOUT_MS);
  });
  let response: Response | null;
  try {
    response = await Promise.race([upgrade, timedOut]);
  } catch (error) {
    throw new ProviderRefusedError(0, `connect failed: ${error instanceof Error ? error.name : "network"}`);
  } finally {
    clearTimeout(timer);
  }
  if (response === null) {
    // An upgrade that completes after the timeout is closed, never left open.
    upgrade.then(closeLate, () => {});
    throw new ProviderRefusedError(0, "connect failed: TimeoutError");
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

function closeLate(response: Response): void {
  const socket = response.webSocket;
  if (!socket) {
    void response.body?.cancel();
    return;
  }
  socket.accept();
  socket.close(1000, "connect timed out");
}
