import { auth, SignedOut } from "./auth.svelte.ts";

/** An API answer that was not a success, with the platform's error code and message (`{error:{code,message}}`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** What the API said about each problem (`details`), e.g. validation issues `[{path, message}]`. */
    readonly details?: unknown,
  ) {
    super(message);
  }
}

type Method = "GET" | "POST" | "PATCH" | "DELETE";

/**
 * The console's one way to call the public API: the bearer token from `auth` (refreshed when due), JSON both ways,
 * errors as ApiError. A 401 is retried once after a refresh (the token may have expired in flight); a second 401
 * means the session is over, and every tab signs out.
 */
export async function api<T>(method: Method, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  let response = await send(method, path, body, headers);
  if (response.status === 401) {
    await auth.refresh();
    response = await send(method, path, body, headers);
    if (response.status === 401) {
      auth.sessionEnded("Your session ended. Please sign in again.");
      throw new SignedOut();
    }
  }
  const text = await response.text();
  const payload = text ? parseJson(text) : undefined;
  if (!response.ok) {
    const error = (payload as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
    throw new ApiError(
      response.status,
      error?.code ?? `http_${response.status}`,
      error?.message ?? `Request failed (HTTP ${response.status})`,
      error?.details,
    );
  }
  return payload as T;
}

async function send(method: Method, path: string, body: unknown, headers: Record<string, string>): Promise<Response> {
  const token = await auth.accessToken();
  return fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A query string from the defined values only. */
export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params))
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : "";
}
