/**
 * The series `/metrics` exposes and their label keys, fixed by the external contract ("Observability"): the alert
 * rules and the dashboard in `observability/` query them by these names, so the exporter and the checks on those
 * files read this one list. A histogram `h` is scraped as `h_bucket` (with `le`), `h_sum` and `h_count`.
 */
export type SeriesType = "counter" | "gauge" | "histogram";

export interface SeriesSpec {
  readonly type: SeriesType;
  readonly labels: readonly string[];
}

export const SERIES = {
  app_info: { type: "gauge", labels: ["version"] },
  http_requests_total: { type: "counter", labels: ["method", "route", "status"] },
  http_request_duration_seconds: { type: "histogram", labels: ["method", "route"] },
  webhook_requests_total: { type: "counter", labels: ["carrier", "outcome"] },
  webhook_rejected_total: { type: "counter", labels: ["carrier", "layer"] },
  calls_total: { type: "counter", labels: ["carrier", "direction", "outcome"] },
  call_sessions_active: { type: "gauge", labels: ["channel"] },
  session_duration_seconds: { type: "histogram", labels: [] },
  websocket_connections_active: { type: "gauge", labels: ["kind"] },
  media_frames_total: { type: "counter", labels: ["direction"] },
  media_frames_dropped_total: { type: "counter", labels: ["reason"] },
  media_frame_delay_seconds: { type: "histogram", labels: ["direction"] },
  ai_provider_requests_total: { type: "counter", labels: ["provider", "status"] },
  ai_provider_latency_seconds: { type: "histogram", labels: ["provider"] },
  ai_provider_errors_total: { type: "counter", labels: ["provider", "error_type"] },
  ai_provider_active_sessions: { type: "gauge", labels: ["provider"] },
  circuit_breaker_state: { type: "gauge", labels: ["provider"] },
  provider_health_state: { type: "gauge", labels: ["provider"] },
  provider_switches_total: { type: "counter", labels: ["from", "to", "reason", "outcome"] },
  barge_in_total: { type: "counter", labels: ["provider"] },
  tool_calls_total: { type: "counter", labels: ["tool", "outcome"] },
  llm_tokens_total: { type: "counter", labels: ["provider", "kind"] },
  d1_query_duration_seconds: { type: "histogram", labels: ["op"] },
  outbox_pending: { type: "gauge", labels: ["kind"] },
  cache_requests_total: { type: "counter", labels: ["tier", "kind", "result"] },
  reminders_sent_total: { type: "counter", labels: ["channel", "outcome"] },
  log_entries_total: { type: "counter", labels: ["level"] },
} as const satisfies Record<string, SeriesSpec>;

export type SeriesName = keyof typeof SERIES;
