import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { earlyInLimiterWindow } from "../support/limiter-window.ts";
import { chromiumPath, expectAccessible, launch, newContext, screenshot, signInThroughForm, world } from "./support/console.ts";

/**
 * Signing in to the console in a real Chromium against the real platform: the form, tokens kept out of URLs,
 * refresh before expiry, logout and revoke-all, and every tab following the others over BroadcastChannel.
 */
describe.skipIf(!chromiumPath())("signing in to the web console", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("signs in with the platform's tokens and keeps them out of the URL", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto("/");
    await expectAccessible(page, "the sign-in page");
    await screenshot(page, "sign-in");

    await page.getByLabel("Email").fill(world().email);
    await page.getByLabel("Password").fill("not-the-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/email or password/i);

    await signInThroughForm(page);
    expect(page.url()).not.toMatch(/token|eyJ/);
    const role = await page.getByTestId("signed-in-role").textContent();
    expect(role).toBe("admin");
    await expectAccessible(page, "the dashboard");
    await context.close();
  });

  it("refreshes the access token a minute before it expires, and the new one works", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.clock.install();
    await signInThroughForm(page);
    const before = await page.evaluate(() => JSON.parse(sessionStorage.getItem("switchboard.tokens") ?? "{}") as { accessToken: string });
    const refreshed = page.waitForResponse((response) => response.url().endsWith("/api/v1/auth/refresh"));
    await page.clock.fastForward("14:05"); // access tokens live 15 minutes
    expect((await refreshed).status()).toBe(200);
    await expect
      .poll(() =>
        page.evaluate(() => (JSON.parse(sessionStorage.getItem("switchboard.tokens") ?? "{}") as { accessToken: string }).accessToken),
      )
      .not.toBe(before.accessToken);
    const token = await page.evaluate(
      () => (JSON.parse(sessionStorage.getItem("switchboard.tokens") ?? "{}") as { accessToken: string }).accessToken,
    );
    const me = await fetch(`${world().url}/api/v1/sessions?limit=1`, { headers: { Authorization: `Bearer ${token}` } });
    expect(me.status).toBe(200);
    await context.close();
  });

  it("tries a rate-limited refresh again after Retry-After, not at once, and keeps working meanwhile", async () => {
    // An address of its own (the local platform takes the client's CF-Connecting-IP), so its spent budget is its own.
    const ip = `203.0.113.${Math.floor(Math.random() * 200) + 20}`;
    const context = await browser.newContext({ baseURL: world().url, extraHTTPHeaders: { "CF-Connecting-IP": ip } });
    const page = await context.newPage();
    await page.clock.install();
    await signInThroughForm(page);
    // Spent in a window's last seconds, the budget was whole again by the time the page refreshed (CI saw 200).
    await earlyInLimiterWindow();
    // The address's refresh budget spent by someone else on it.
    for (let i = 0; i < 10; i++) {
      const guess = await fetch(`${world().url}/api/v1/auth/refresh`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "CF-Connecting-IP": ip },
        body: JSON.stringify({ refreshToken: `rt_${crypto.randomUUID()}.guess` }),
      });
      expect(guess.status).toBe(401);
    }
    const refreshes: number[] = [];
    page.on("response", (response) => {
      if (response.url().endsWith("/api/v1/auth/refresh")) refreshes.push(response.status());
    });

    await page.clock.fastForward("14:05");
    await expect.poll(() => refreshes).toEqual([429]);
    await page.clock.runFor(30_000); // half the Retry-After: nothing is sent, however many timers fire
    await page.waitForTimeout(500);
    expect(refreshes).toEqual([429]);
    await expect.poll(() => page.getByRole("navigation", { name: "Main" }).isVisible()).toBe(true);
    await page.clock.runFor(31_000);
    await expect.poll(() => refreshes.length).toBe(2);
    await context.close();
  });

  it("signs a new tab in from an open one, and logging out in one tab logs out every tab", async () => {
    const context = await newContext(browser);
    const first = await context.newPage();
    await signInThroughForm(first);
    const second = await context.newPage();
    await second.goto("/");
    // The new tab asked the open one for its tokens over BroadcastChannel: no sign-in form.
    await expect.poll(() => second.getByRole("navigation", { name: "Main" }).isVisible()).toBe(true);
    const token = await second.evaluate(
      () => (JSON.parse(sessionStorage.getItem("switchboard.tokens") ?? "{}") as { accessToken: string }).accessToken,
    );

    // The console signs its tabs out at once and tells the server after: the server's part is its answer.
    const revoked = first.waitForResponse((response) => response.url().endsWith("/api/v1/auth/logout"));
    await first.getByRole("button", { name: "Log out" }).click();
    await expect.poll(() => second.getByRole("button", { name: "Sign in" }).isVisible()).toBe(true);
    await expect.poll(() => first.getByRole("button", { name: "Sign in" }).isVisible()).toBe(true);
    expect(await second.evaluate(() => sessionStorage.getItem("switchboard.tokens"))).toBeNull();
    // The server revoked the token too: the tab that only received it cannot use it any more.
    expect((await revoked).status()).toBe(204);
    const after = await fetch(`${world().url}/api/v1/sessions?limit=1`, { headers: { Authorization: `Bearer ${token}` } });
    expect(after.status).toBe(401);
    await context.close();
  });

  it("revoke-all signs out every tab and every device", async () => {
    const elsewhere = await newContext(browser);
    const other = await elsewhere.newPage();
    await other.clock.install();
    await signInThroughForm(other);
    const context = await newContext(browser);
    const page = await context.newPage();
    await signInThroughForm(page);
    const revoked = page.waitForResponse((response) => response.url().endsWith("/api/v1/auth/revoke-all"));
    await page.getByRole("button", { name: "Sign out everywhere" }).click();
    await expect.poll(() => page.getByRole("button", { name: "Sign in" }).isVisible()).toBe(true);
    expect((await revoked).status()).toBe(204);
    // The other device's refresh is refused when it comes due, and its console signs out by itself and says why.
    await other.clock.fastForward("14:05");
    await expect.poll(() => other.getByRole("button", { name: "Sign in" }).isVisible(), { timeout: 10_000 }).toBe(true);
    expect(await other.getByRole("status").first().textContent()).toMatch(/session ended/i);
    await elsewhere.close();
    await context.close();
  });
});
