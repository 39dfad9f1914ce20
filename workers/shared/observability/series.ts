/**
 * Every series `/metrics` exposes: names and label keys fixed by the contract (dashboards and alert rules depend on
 * them), with the kind, help text and — for histograms — fixed buckets. Nothing outside this list is ever exposed,
 * and a label value is always one of a bounded set (route templates, enums), never a raw path or an id.
 */
export type SeriesKind = "counter" | "gauge" | "histogram";

export interface SeriesSpec {
  kind: SeriesKind;
  help: string;
  labels: readonly string[];
  /** Histograms: upper bounds in seconds, ascending (`+Inf` is implied). */
  buckets?: readonly number[];
  /** Gauges fed by many sources (objects, isolates): summed, or the worst (highest) value wins. */
  aggregate?: "sum" | "max";
}

/** Per-frame delay is milliseconds at most on a healthy path; the tail shows holds (reconnects, switches). */
const FRAME_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** A voice turn: under a second is good, 2 s is the alert line, 10 s is a stall. */
const TURN_BUCKETS = [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20];
/** API requests: the 200 ms alert line sits in the middle. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10];
/** D1 queries: the 50 ms alert line sits in the middle. */
const QUERY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];
/** A call or session: seconds to an hour and more. */
const SESSION_BUCKETS = [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];

export const SERIES = {
  app_info: { kind: "gauge", help: "The running build (always 1).", labels: ["version"], aggregate: "max" },
  http_requests_total: { kind: "counter", help: "HTTP requests answered, by route template.", labels: ["method", "route", "status"] },
  http_request_duration_seconds: {
    kind: "histogram",
    help: "Time to answer an HTTP request, by route template.",
    labels: ["method", "route"],
    buckets: REQUEST_BUCKETS,
  },
  webhook_requests_total: {
    kind: "counter",
    help: "Carrier webhooks and media upgrades, accepted or rejected.",
    labels: ["carrier", "outcome"],
  },
  webhook_rejected_total: {
    kind: "counter",
    help: "Carrier requests refused, by the guard layer that refused them.",
    labels: ["carrier", "layer"],
  },
  calls_total: { kind: "counter", help: "Phone calls that ended, by how.", labels: ["carrier", "direction", "outcome"] },
  call_sessions_active: { kind: "gauge", help: "Sessions live now.", labels: ["channel"], aggregate: "sum" },
  session_duration_seconds: { kind: "histogram", help: "Length of ended sessions.", labels: [], buckets: SESSION_BUCKETS },
  websocket_connections_active: {
    kind: "gauge",
    help: "WebSockets open now: carrier media, provider, live (browsers).",
    labels: ["kind"],
    aggregate: "sum",
  },
  media_frames_total: {
    kind: "counter",
    help: "Audio frames relayed (in: caller to provider, out: agent to caller).",
    labels: ["direction"],
  },
  media_frames_dropped_total: { kind: "counter", help: "Caller audio frames dropped, by why.", labels: ["reason"] },
  media_frame_delay_seconds: {
    kind: "histogram",
    help: "Delay the platform added to a frame (sampled): 0 when relayed in the event it arrived, the hold otherwise.",
    labels: ["direction"],
    buckets: FRAME_BUCKETS,
  },
  ai_provider_requests_total: { kind: "counter", help: "Provider connection attempts, by result.", labels: ["provider", "status"] },
  ai_provider_latency_seconds: {
    kind: "histogram",
    help: "Caller's turn end to the provider's first audio.",
    labels: ["provider"],
    buckets: TURN_BUCKETS,
  },
  ai_provider_errors_total: { kind: "counter", help: "Provider errors, by type.", labels: ["provider", "error_type"] },
  ai_provider_active_sessions: { kind: "gauge", help: "Provider sessions open now.", labels: ["provider"], aggregate: "sum" },
  circuit_breaker_state: {
    kind: "gauge",
    help: "Per-provider breaker: 0 closed, 1 half-open, 2 open (the worst among live calls).",
    labels: ["provider"],
    aggregate: "max",
  },
  provider_health_state: {
    kind: "gauge",
    help: "Fleet provider health: 0 healthy, 1 degraded, 2 unhealthy, 3 offline, 4 unknown.",
    labels: ["provider"],
    aggregate: "max",
  },
  provider_switches_total: {
    kind: "counter",
    help: "Provider switches, by cause and result.",
    labels: ["from", "to", "reason", "outcome"],
  },
  barge_in_total: { kind: "counter", help: "Callers who spoke over the agent.", labels: ["provider"] },
  tool_calls_total: { kind: "counter", help: "Agent tool calls, by tool and result.", labels: ["tool", "outcome"] },
  llm_tokens_total: { kind: "counter", help: "Tokens the providers reported using.", labels: ["provider", "kind"] },
  d1_query_duration_seconds: { kind: "histogram", help: "D1 round trips, by operation.", labels: ["op"], buckets: QUERY_BUCKETS },
  outbox_pending: { kind: "gauge", help: "Rows waiting in calls' outboxes for D1.", labels: ["kind"], aggregate: "sum" },
  cache_requests_total: { kind: "counter", help: "Lookups of the fast tier (KV), by result.", labels: ["tier", "kind", "result"] },
  reminders_sent_total: { kind: "counter", help: "Reminders delivered, by channel and result.", labels: ["channel", "outcome"] },
  log_entries_total: { kind: "counter", help: "Log lines written, by level.", labels: ["level"] },
  ear_latency_seconds: {
    kind: "histogram",
    help: "Caller's turn end to the first agent audio the carrier says the caller heard.",
    labels: ["provider"],
    buckets: TURN_BUCKETS,
  },
} as const satisfies Record<string, SeriesSpec>;

export type SeriesName = keyof typeof SERIES;
/** The label keys of a series, as an object type: every key given, values strings. */
export type LabelsOf<N extends SeriesName> = { [K in (typeof SERIES)[N]["labels"][number]]: string };
export type CounterName = { [N in SeriesName]: (typeof SERIES)[N]["kind"] extends "counter" ? N : never }[SeriesName];
export type GaugeName = { [N in SeriesName]: (typeof SERIES)[N]["kind"] extends "gauge" ? N : never }[SeriesName];
export type HistogramName = { [N in SeriesName]: (typeof SERIES)[N]["kind"] extends "histogram" ? N : never }[SeriesName];
