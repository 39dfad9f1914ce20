import { afterEach } from "vitest";
import { reportOpenPages } from "./console.ts";

// A failed test's pages, as the browser saw them (files that close their contexts per test report before closing).
afterEach(async ({ task }) => {
  if (task.result?.state === "fail") await reportOpenPages();
});
