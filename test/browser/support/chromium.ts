import { existsSync } from "node:fs";

/** Where a Chromium is: CHROMIUM_PATH, else Debian's package (what .ci/run installs), else none. */
export function findChromium(): string | null {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  return candidates.find((path): path is string => Boolean(path && existsSync(path))) ?? null;
}
