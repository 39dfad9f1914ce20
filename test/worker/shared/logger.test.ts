import { describe, expect, it } from "vitest";
import { createLogger } from "../../../workers/shared/logger.ts";
import { captureLogs } from "../support/logs.ts";

/** The log line's own keys, as written to the console (Workers Logs indexes them). */
describe("the logger", () => {
  it("keeps a line's name, level and time whatever its fields are called", () => {
    const logs = captureLogs();
    createLogger({ correlationId: "logger-test", event: "from-context" }).warn("carrier.event", {
      event: "call.initiated",
      level: "debug",
      carrierEvent: "call.initiated",
    });
    expect(logs.all()).toEqual([
      expect.objectContaining({ event: "carrier.event", level: "warn", correlationId: "logger-test", carrierEvent: "call.initiated" }),
    ]);
  });
});
