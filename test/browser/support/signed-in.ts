import type { Browser, BrowserContext, Page } from "playwright-core";
import { newContext, submitSignIn } from "./console.ts";

/**
 * One sign-in per test file (the platform allows ten sign-ins a minute from an address, and a context keeps one
 * address: newContext). A first tab signs in through the form and stays open; each test opens its own tab in the same
 * context, which is signed in by the open one over BroadcastChannel (as a person's second tab is). Waits with
 * Playwright's own `waitFor`, so it also works in a `beforeAll` (vitest's `expect.poll` only runs inside a test).
 */
export interface SignedIn {
  context: BrowserContext;
  newPage(): Promise<Page>;
}

export async function signedIn(browser: Browser): Promise<SignedIn> {
  const context = await newContext(browser);
  const first = await context.newPage();
  await first.goto("/");
  await submitSignIn(first);
  await signedInNavigation(first);
  return {
    context,
    async newPage() {
      const page = await context.newPage();
      await page.goto("/");
      await signedInNavigation(page);
      return page;
    },
  };
}

const signedInNavigation = (page: Page) => page.getByRole("navigation", { name: "Main" }).waitFor({ state: "visible", timeout: 30_000 });
