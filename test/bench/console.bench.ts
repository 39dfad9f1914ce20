/**
 * Web console first-load benchmark: `node test/bench/console.bench.ts [--loads 10]` (`npm run bench` runs it). Builds
 * the console, starts the real platform under wrangler (the Worker serving the console as static assets, a seeded
 * D1), then loads it in headless Chromium (Debian's, or CHROMIUM_PATH) from a fresh browser context each time — no
 * cache, as a first visit — and prints, per load: the document's response end, DOMContentLoaded, the load event and
 * when the sign-in form could be used; then, signed in, when the dashboard's menu shows. Beside them the floor on the
 * same stack: a fresh context navigating to `/health` (a Worker answer, no app). Also the built files' sizes, raw and
 * gzipped. Asserts nothing about time.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { findChromium } from "../browser/support/chromium.ts";
import { testSettings } from "../support/test-settings.ts";
import { startBenchPlatform, stopBenchCarriers } from "./bench-platform.ts";
import { option } from "./options.ts";
import { ms, table } from "./twilio-side.ts";

const LOADS = Number(option("loads", "10"));
/** Loads that also sign in and time the dashboard: fewer than the platform's ten sign-ins a minute per address. */
const SIGN_INS = 8;
if (!(Number.isInteger(LOADS) && LOADS >= 1 && LOADS <= 200)) throw new Error("--loads: 1..200");

const ROOT = join(import.meta.dirname, "../..");
const DIST = join(ROOT, "console/dist");
const executablePath = findChromium();
if (!executablePath) {
  console.log("console bench skipped: no Chromium found (install Debian's `chromium` or set CHROMIUM_PATH)");
  process.exit(0);
}

execFileSync(
  process.execPath,
  [join(ROOT, "node_modules/vite/bin/vite.js"), "build", "--config", "console/vite.config.ts", "--logLevel", "warn"],
  {
    cwd: ROOT,
    stdio: "inherit",
  },
);

function builtFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    return statSync(path).isDirectory() ? builtFiles(path) : [path];
  });
}
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const sizes = builtFiles(DIST).map((path) => {
  const bytes = readFileSync(path);
  return [path.slice(DIST.length + 1), kib(bytes.length), kib(gzipSync(bytes).length)];
});

const percentile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
};
const row = (label: string, values: number[]) => [
  label,
  String(values.length),
  ms(percentile(values, 0.5)),
  ms(percentile(values, 0.95)),
  ms(Math.max(...values)),
];

const settings = await testSettings(() => ({}));
const { platform } = await startBenchPlatform(settings, {});
const browser = await chromium.launch({ executablePath, headless: true });
try {
  const figures = {
    floor: [] as number[],
    responseEnd: [] as number[],
    domContentLoaded: [] as number[],
    load: [] as number[],
    signInUsable: [] as number[],
    dashboardAfterSignIn: [] as number[],
  };
  for (let n = 0; n < LOADS + 1; n++) {
    const warmup = n === 0;
    const floorContext = await browser.newContext({ baseURL: platform.url });
    const floorPage = await floorContext.newPage();
    await floorPage.goto("/health");
    const floor = await floorPage.evaluate(
      () => (performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming).responseEnd,
    );
    await floorContext.close();

    const context = await browser.newContext({ baseURL: platform.url });
    const page = await context.newPage();
    await page.goto("/");
    // The app marks when it is on screen and usable (console/src/App.svelte): read in the page, no round trip in it.
    const usable = (await (
      await page.waitForFunction(() => performance.getEntriesByName("switchboard:interactive")[0]?.startTime ?? false)
    ).jsonValue()) as number;
    const timing = await page.evaluate(() => {
      const entry = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming;
      return { responseEnd: entry.responseEnd, domContentLoaded: entry.domContentLoadedEventEnd, load: entry.loadEventEnd };
    });
    // The platform takes ten sign-ins a minute from one address (every load here comes from 127.0.0.1).
    if (n >= SIGN_INS) {
      await context.close();
      figures.floor.push(floor);
      figures.responseEnd.push(timing.responseEnd);
      figures.domContentLoaded.push(timing.domContentLoaded);
      figures.load.push(timing.load);
      figures.signInUsable.push(usable);
      continue;
    }
    await page.getByLabel("Email").fill(platform.admin.email);
    await page.getByLabel("Password").fill(platform.admin.password);
    // From the form's submit event to the first frame showing the menu, both read in the page.
    await page.evaluate(() => {
      document
        .querySelector("form")
        ?.addEventListener("submit", () => sessionStorage.setItem("bench.submitted", String(performance.now())), {
          capture: true,
        });
    });
    await page.getByRole("button", { name: "Sign in" }).click();
    const dashboard = (await (
      await page.waitForFunction(
        () =>
          document.querySelector("nav[aria-label=Main]") ? performance.now() - Number(sessionStorage.getItem("bench.submitted")) : false,
        undefined,
        { polling: "raf" },
      )
    ).jsonValue()) as number;
    await context.close();
    if (warmup) continue;
    figures.floor.push(floor);
    figures.responseEnd.push(timing.responseEnd);
    figures.domContentLoaded.push(timing.domContentLoaded);
    figures.load.push(timing.load);
    figures.signInUsable.push(usable);
    figures.dashboardAfterSignIn.push(dashboard);
  }
  console.log(table("Web console build", ["file", "raw", "gzip"], sizes));
  console.log(
    table(
      "Web console first load, ms from navigation start (fresh context: no cache; local platform under wrangler)",
      ["what", "n", "p50", "p95", "max"],
      [
        row("floor: /health navigated (a Worker answer, no app)", figures.floor),
        row("console: document response end", figures.responseEnd),
        row("console: DOMContentLoaded", figures.domContentLoaded),
        row("console: load event", figures.load),
        row("console: sign-in form usable", figures.signInUsable),
        row("sign in → dashboard shown (ms from the submit)", figures.dashboardAfterSignIn),
      ],
    ),
  );
} finally {
  await browser.close();
  await platform.stop();
  await stopBenchCarriers();
}
