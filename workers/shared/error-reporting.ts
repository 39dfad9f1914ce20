import { redact } from "./logger.ts";
import { parseSettings } from "./settings.ts";

/**
 * Optional error reporting to Sentry through `@sentry/cloudflare`: the options its `withSentry` (the Worker) and
 * `instrumentDurableObjectWithSentry` (the objects) wrappers are given, built from settings. Without `SENTRY_DSN`
 * (or with a malformed one) the SDK is disabled and sends nothing. What it would send is held to the logs' rules:
 * no request bodies, cookies, query strings or credentials, no breadcrumbs (an outbound fetch's URL can carry a
 * provider key, Gemini's does), extra fields redacted like a log line.
 */
export interface ErrorReportingOptions {
  dsn: string | undefined;
  enabled: boolean;
  /** Errors only: tracing is the metrics' job. */
  tracesSampleRate: 0;
  beforeSend<E extends ReportedEvent>(event: E): E;
  beforeBreadcrumb(): null;
}

/** The parts of a Sentry event that can carry what must not leave the platform. */
export interface ReportedEvent {
  request?: {
    url?: string;
    method?: string;
    headers?: Record<string, string>;
    cookies?: unknown;
    data?: unknown;
    query_string?: unknown;
    env?: unknown;
  };
  extra?: Record<string, unknown>;
  user?: { id?: string | number };
  breadcrumbs?: unknown[];
}

/** Request headers an error report may keep; every other header (Authorization, Cookie, signatures) is dropped. */
const KEPT_HEADERS = new Set(["content-type", "user-agent", "x-correlation-id"]);

export function errorReportingOptions(env: object): ErrorReportingOptions {
  const dsn = parseSettings(env).values.SENTRY_DSN;
  return {
    dsn,
    enabled: dsn !== undefined,
    tracesSampleRate: 0,
    beforeSend: scrubReport,
    beforeBreadcrumb: () => null,
  };
}

export function scrubReport<E extends ReportedEvent>(event: E): E {
  const { request, extra, user } = event;
  if (request) {
    event.request = {
      method: request.method,
      url: request.url?.split("?")[0],
      headers: Object.fromEntries(Object.entries(request.headers ?? {}).filter(([name]) => KEPT_HEADERS.has(name.toLowerCase()))),
    };
  }
  if (extra) event.extra = redact(extra);
  if (user) event.user = user.id === undefined ? {} : { id: user.id };
  delete event.breadcrumbs;
  return event;
}
