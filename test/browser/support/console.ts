import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import AxeBuilder from "@axe-core/playwright";
import { type Browser, type BrowserContext, chromium, type LaunchOptions, type Page } from "playwright-core";
import { expect, inject } from "vitest";
import { type ApiClient, signIn } from "../../node/support/local-platform.ts";

/**
 * What a browser test needs: the platform's address, and the admin the running test file signs in as (each file has
 * its own: global-setup.ts); a Chromium; helpers for pages.
 */
export function world(): { url: string; tenantId: string; email: string; password: string } {
  const { url, tenantId, users } = inject("console");
  const file = basename(expect.getState().testPath ?? "");
  const user = users[file];
  if (!user) throw new Error(`no console user for ${file || "this file"} (global-setup.ts makes one per test file)`);
  return { url, tenantId, ...user };
}
export const chromiumPath = () => inject("chromium");

const SCREENSHOTS = join(import.meta.dirname, "../../../docs/screenshots");

/**
 * Headless Chromium. `args` adds switches, e.g. a fake microphone fed from a WAV:
 * `--use-file-for-fake-audio-capture=<file>`; the fake device and the permission prompt's auto-accept are always on.
 */
export async function launch(args: string[] = [], options: LaunchOptions = {}): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error("no Chromium (global-setup.ts said why)");
  return chromium.launch({
    executablePath,
    headless: true,
    args: ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required", ...args],
    ...options,
  });
}

/**
 * A context on the platform's origin with the microphone allowed (the softphone asks for it), from an address of its
 * own, as separate people's browsers are: the platform takes ten sign-ins a minute from one address, and the test
 * files' contexts, sharing 127.0.0.1, ran into that whenever the suite ran fast.
 */
export async function newContext(browser: Browser, viewport = { width: 1280, height: 800 }): Promise<BrowserContext> {
  const context = await browser.newContext({
    baseURL: world().url,
    viewport,
    permissions: ["microphone"],
    extraHTTPHeaders: { "CF-Connecting-IP": ownAddress() },
  });
  openContexts.add(context);
  context.on("close", () => openContexts.delete(context));
  context.on("page", keepJournal);
  return context;
}

let contextsMade = 0;
/** In 198.18.0.0/15 (for benchmarks and tests, RFC 2544); the local platform takes the client's CF-Connecting-IP. */
function ownAddress(): string {
  contextsMade++;
  return `198.18.${Math.floor(Math.random() * 256)}.${(contextsMade % 254) + 1}`;
}

const openContexts = new Set<BrowserContext>();
const journals = new WeakMap<Page, string[]>();
const JOURNAL_LINES = 60;
/** A URL as journalled: without the platform's origin, or its query (a recording link's carries its signature). */
const bare = (url: string) => (url.split("?")[0] ?? url).replace(world().url, "");

/** Each page's last navigations, responses, failed requests and errors, for `reportOpenPages`. */
function keepJournal(page: Page): void {
  const lines: string[] = [];
  journals.set(page, lines);
  const note = (line: string) => {
    lines.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
    if (lines.length > JOURNAL_LINES) lines.shift();
  };
  // An error or console message can quote a URL: its query goes too.
  const text = (message: string) => message.replace(/\?\S*/g, "");
  page.on("framenavigated", (frame) => frame === page.mainFrame() && note(`navigated to ${bare(frame.url())}`));
  page.on("response", (response) => note(`${response.status()} ${response.request().method()} ${bare(response.url())}`));
  page.on("requestfailed", (request) => note(`failed ${request.method()} ${bare(request.url())}: ${request.failure()?.errorText}`));
  page.on("pageerror", (error) => note(`page error: ${text(error.message)}`));
  page.on("crash", () => note("the page's renderer crashed"));
  page.on(
    "console",
    (message) => ["error", "warning"].includes(message.type()) && note(`console ${message.type()}: ${text(message.text())}`),
  );
}

/**
 * What every open page of the test's contexts shows and last did: printed when a test fails (support/setup.ts), so a
 * failure in CI says what the browser saw, not only which locator it waited for.
 */
export async function reportOpenPages(): Promise<void> {
  for (const context of openContexts) {
    for (const page of context.pages()) {
      const shown = await page
        .locator("body")
        .ariaSnapshot({ timeout: 2_000 })
        .catch((error: unknown) => `(unreadable: ${String(error)})`);
      console.log([`page at ${bare(page.url())} shows:\n${shown.slice(0, 1_500)}`, ...(journals.get(page) ?? [])].join("\n  "));
    }
  }
}

/** Signs in through the console's form, as a person would, and waits for the dashboard. */
export async function signInThroughForm(page: Page, email = world().email, password = world().password): Promise<void> {
  await page.goto("/");
  await submitSignIn(page, email, password);
}

/**
 * Fills and submits the sign-in form on `page` until signed in. The platform takes ten sign-ins a minute from one
 * address: should a context spend its own address's (newContext), the refusal (the form says so) waits the minute out
 * and signs in again, as a person would.
 */
export async function submitSignIn(page: Page, email = world().email, password = world().password): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    // The account controls show at every width (the menu hides behind a button below 720 px).
    const signedIn = page.getByRole("button", { name: "Log out" });
    const limited = page.getByRole("alert").filter({ hasText: /too many requests/i });
    await signedIn.or(limited).first().waitFor({ timeout: 30_000 });
    if (await signedIn.isVisible()) return;
    if (attempt === 3) throw new Error("sign-in still rate-limited after two waits");
    await page.waitForTimeout(61_000);
  }
}

/** The API as the test file's admin, for setting up what a test needs without clicking through it. */
export function adminApi(): Promise<ApiClient> {
  return signIn(world().url, world().email, world().password);
}

/** axe-core over the whole page: no serious or critical violation (WCAG 2.1 A and AA rules). */
export async function expectAccessible(page: Page, where: string): Promise<void> {
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const blocking = results.violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map((violation) => `${violation.id} (${violation.impact}): ${violation.nodes.map((node) => node.target.join(" ")).join(", ")}`);
  expect(blocking, `accessibility of ${where}`).toEqual([]);
}

/** Screenshots for the README, written only when asked (`npm run screenshots`), so a test run leaves the tree clean. */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (process.env.SCREENSHOTS !== "1") return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
