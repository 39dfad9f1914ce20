import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumPath, expectAccessible, launch, screenshot } from "./support/console.ts";
import { endedSessionWithTranscript } from "./support/ended-session.ts";
import { type SignedIn, signedIn } from "./support/signed-in.ts";

/**
 * The history pages against the real platform: sessions and calls lists whose filters live in the URL, and an ended
 * session's record — its transcript, analysis, escalations and recording (none here, said in words).
 */
describe.skipIf(!chromiumPath())("the console's history", () => {
  let browser: Browser;
  let session: Awaited<ReturnType<typeof endedSessionWithTranscript>>;
  let tabs: SignedIn;
  beforeAll(async () => {
    browser = await launch();
    tabs = await signedIn(browser);
    session = await endedSessionWithTranscript("History");
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("lists sessions filtered through the URL and opens an ended one's record", async () => {
    const page = await tabs.newPage();
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "History" }).click();
    await expect.poll(() => page.getByRole("heading", { name: "Sessions" }).isVisible()).toBe(true);

    await page.getByLabel("Status").selectOption("ended");
    await page.getByLabel("Channel").selectOption("web");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await expect.poll(() => new URL(page.url()).search).toBe("?status=ended&channel=web");
    const record = page.locator(`a[href="/console/sessions/${session.id}/record"]`);
    await expect.poll(() => record.isVisible()).toBe(true);
    await expectAccessible(page, "the sessions list");
    await screenshot(page, "sessions-list");

    // A reload keeps the filters: they are in the URL, and the form shows them.
    await page.reload();
    await expect.poll(() => record.isVisible()).toBe(true);
    expect(await page.getByLabel("Status").inputValue()).toBe("ended");

    // Filtering for active sessions leaves the ended one out.
    await page.getByLabel("Status").selectOption("active");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get("status")).toBe("active");
    await expect.poll(() => page.getByRole("status").filter({ hasText: "Loading" }).count()).toBe(0);
    expect(await record.count()).toBe(0);

    await page.goBack();
    await expect.poll(() => record.isVisible()).toBe(true);
    expect(await page.getByLabel("Status").inputValue(), "the form follows the URL back").toBe("ended");
    await record.click();
    await expect.poll(() => page.getByRole("heading", { name: "Session record" }).isVisible()).toBe(true);
    const transcript = page.getByRole("region", { name: "Transcript" });
    await expect.poll(() => transcript.textContent()).toContain(session.callerSaid);
    expect(await transcript.textContent()).toContain(session.agentSaid);
    const analysis = page.getByRole("region", { name: "Analysis" });
    await expect.poll(() => analysis.getByRole("heading", { name: "Summary" }).isVisible()).toBe(true);
    expect(["positive", "neutral", "negative"]).toContain(await analysis.getByTestId("sentiment").textContent());
    expect(await analysis.textContent()).toContain("local-lexicon-v1");
    await expect.poll(() => page.getByRole("region", { name: "Recording" }).textContent()).toContain("has no recording");
    expect(await page.getByRole("region", { name: "Escalations" }).textContent()).toContain("No escalation rule fired");
    await expectAccessible(page, "the session record");
    await screenshot(page, "session-record");
    await page.close();
  });

  it("works at 360 px wide: the lists and the record", async () => {
    const page = await tabs.newPage();
    // Signed in wide (the helper waits for the menu, which folds away below 720 px), then narrowed.
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto(`/console/sessions/${session.id}/record`);
    await expect.poll(() => page.getByRole("region", { name: "Transcript" }).textContent()).toContain(session.agentSaid);
    await expectAccessible(page, "the session record at 360 px");
    // Nothing wider than the screen but the tables' own scrolling wrappers.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);

    await page.goto("/console/history/calls?direction=inbound");
    await expect.poll(() => page.getByRole("heading", { name: "Calls" }).isVisible()).toBe(true);
    expect(await page.getByLabel("Direction").inputValue()).toBe("inbound");
    await expect.poll(() => page.getByRole("status").filter({ hasText: "Loading" }).count()).toBe(0);
    await expectAccessible(page, "the calls list at 360 px");
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    await page.close();
  });
});
