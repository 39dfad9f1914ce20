import { afterEach, vi } from "vitest";
import { eventually } from "./carriers.ts";

/**
 * The platform's log lines as written: the Worker and the objects run in the test's isolate, and the logger writes
 * one JSON object per line with console, so watching console (the calls still go through) is watching the output.
 */
export interface LogLine {
  ts: string;
  level: string;
  event: string;
  [field: string]: unknown;
}

export interface CapturedLogs {
  /** Every JSON line written since capture began, oldest first. */
  all(): LogLine[];
  /** The lines naming `sessionId`. */
  of(sessionId: string): LogLine[];
  /** Waits until a line of `sessionId` satisfies `test`. */
  until(sessionId: string, test: (line: LogLine) => boolean, attempts?: number): Promise<LogLine>;
}

afterEach(() => vi.restoreAllMocks());

export function captureLogs(): CapturedLogs {
  const spies = (["log", "info", "warn", "error", "debug"] as const).map((method) => vi.spyOn(console, method));
  const all = () =>
    spies
      .flatMap((spy) => spy.mock.calls.map((args, i) => ({ text: args[0], order: spy.mock.invocationCallOrder[i]! })))
      .sort((a, b) => a.order - b.order)
      .flatMap(({ text }) => (typeof text === "string" && text.startsWith("{") ? [JSON.parse(text) as LogLine] : []))
      .filter((line) => typeof line.event === "string");
  const of = (sessionId: string) => all().filter((line) => line.sessionId === sessionId);
  return {
    all,
    of,
    until: (sessionId, test, attempts = 250) => eventually(async () => of(sessionId).find(test), attempts),
  };
}
