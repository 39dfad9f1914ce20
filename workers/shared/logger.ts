/**
 * Structured JSON logs (Workers Logs indexes the fields). Every line has an event name, a level and the
 * correlation id; values under sensitive keys are replaced before they are written, so a careless caller cannot
 * leak a token, a password or audio into the logs.
 */
import { metrics } from "./observability/metrics.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

const SENSITIVE_KEY = /pass(word)?|secret|token|authorization|cookie|api[-_]?key|signature|payload|audio|^d$|private/i;
const MAX_STRING = 512;

export interface Logger {
  readonly context: LogFields;
  child(fields: LogFields): Logger;
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

export function createLogger(context: LogFields): Logger {
  const write = (level: LogLevel, event: string, fields: LogFields = {}) => {
    metrics.count("log_entries_total", { level });
    const ts = new Date().toISOString();
    const line: LogFields = { ts, level, event, ...redact(context), ...redact(fields) };
    // The line's own keys win: a field named `event` renamed the line (carrier.event lines were written under the
    // carrier's event name, unfindable by theirs).
    line.ts = ts;
    line.level = level;
    line.event = event;
    const text = JSON.stringify(line);
    if (level === "error") console.error(text);
    else if (level === "warn") console.warn(text);
    else console.log(text);
  };
  return {
    context,
    child: (fields) => createLogger({ ...context, ...fields }),
    debug: (event, fields) => write("debug", event, fields),
    info: (event, fields) => write("info", event, fields),
    warn: (event, fields) => write("warn", event, fields),
    error: (event, fields) => write("error", event, fields),
  };
}

export function redact(fields: LogFields, depth = 0): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    out[key] = SENSITIVE_KEY.test(key) ? "[redacted]" : redactValue(value, depth);
  }
  return out;
}

function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === "string") return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return "[binary]";
  if (Array.isArray(value)) return depth > 3 ? "[array]" : value.slice(0, 20).map((v) => redactValue(v, depth + 1));
  if (value && typeof value === "object") return depth > 3 ? "[object]" : redact(value as LogFields, depth + 1);
  return value;
}
