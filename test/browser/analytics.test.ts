import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminApi, chromiumPath, expectAccessible, launch, screenshot } from "./support/console.ts";
import { signedIn } from "./support/signed-in.ts";

interface Answer {
  buckets: Array<{ calls: number; webSessions: number }>;
}

/**
 * The analytics page against the real platform: the range and interval in the URL, the figures the API gives for
 * that range, and every chart with its numbers in a table (what a screen reader reads instead of the canvas).
 */
describe.skipIf(!chromiumPath())("the console's analytics", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("charts the range asked for, with a table of numbers for each chart", async () => {
    // A web session today, so the range is not empty whatever ran before.
    const api = await adminApi();
    const created = await api.request("POST", "/api/v1/sessions", { provider: "local" });
    expect(created.status).toBe(201);
    expect((await api.request("POST", `/api/v1/sessions/${(created.body as { id: string }).id}/end`)).status).toBe(200);

    const page = await (await signedIn(browser)).newPage();
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Analytics" }).click();
    const today = new Date().toISOString().slice(0, 10);
    await page.getByLabel("From").fill(today);
    await page.getByLabel("To").fill(today);
    await page.getByLabel("Interval").selectOption("hour");
    await page.getByRole("button", { name: "Show" }).click();
    await expect.poll(() => new URL(page.url()).search).toBe(`?from=${today}&to=${today}&interval=hour`);

    // The page says what the API says for the same range.
    const from = new Date(`${today}T00:00:00.000`).toISOString();
    const to = new Date(`${today}T23:59:59.999`).toISOString();
    const answer = (await api.request("GET", `/api/v1/analytics/calls?from=${from}&to=${to}&interval=hour`)).body as Answer;
    const calls = answer.buckets.reduce((sum, bucket) => sum + bucket.calls, 0);
    const web = answer.buckets.reduce((sum, bucket) => sum + bucket.webSessions, 0);
    expect(web).toBeGreaterThan(0);
    await expect.poll(() => page.getByTestId("analytics-total").textContent()).toContain(`${calls} calls and ${web} web sessions`);

    for (const title of [
      "Calls",
      "Answer and failure rates",
      "Latency at the caller's ear, p95",
      "Escalations and provider switches",
      "Caller sentiment",
      "Calls and web sessions by provider",
      "Calls by carrier",
    ]) {
      expect(await page.getByRole("figure", { name: title, exact: true }).isVisible(), title).toBe(true);
    }
    const numbers = page.getByText("Calls: the numbers", { exact: true });
    await numbers.click();
    const table = page.getByRole("table", { name: "Calls", exact: true });
    await expect.poll(() => table.isVisible()).toBe(true);
    // One row per hour bucket, and the web sessions column adds up to the API's figure.
    expect(await table.locator("tbody tr").count()).toBe(answer.buckets.length);
    const column = await table.locator("tbody tr td:nth-of-type(4)").allTextContents();
    expect(column.reduce((sum, cell) => sum + Number(cell), 0)).toBe(web);
    await expectAccessible(page, "the analytics page");
    await screenshot(page, "analytics");

    await page.setViewportSize({ width: 360, height: 740 });
    await expectAccessible(page, "the analytics page at 360 px");
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    await page.close();
  });
});
