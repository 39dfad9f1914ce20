import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient } from "../node/support/local-platform.ts";
import { adminApi, chromiumPath, expectAccessible, launch, newContext, screenshot, signInThroughForm, world } from "./support/console.ts";
import { type SignedIn, signedIn } from "./support/signed-in.ts";

/**
 * The admin pages against the real platform: users, phone numbers, an API key shown once and revoked, a prompt's new
 * version and rollback, a tenant setting changed and a refused one shown by its field, the audit log; and a
 * non-admin told the pages need an admin.
 */
describe.skipIf(!chromiumPath())("the console's admin pages", () => {
  let browser: Browser;
  const suffix = String(Date.now()).slice(-7);
  let tabs: SignedIn;
  let api: ApiClient;
  beforeAll(async () => {
    browser = await launch();
    tabs = await signedIn(browser);
    api = await adminApi();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("manages users, numbers, API keys and prompts", async () => {
    const page = await tabs.newPage();
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" }).click();

    // Users: create an agent, make them a supervisor, disable them.
    const email = `agent-${suffix}@console.test`;
    const newUser = page.getByRole("region", { name: "New user" });
    await newUser.getByLabel("Email").fill(email);
    await newUser.getByLabel("Password").fill("a-long-enough-password");
    await newUser.getByLabel("Role").selectOption("agent");
    await newUser.getByRole("button", { name: "Create user" }).click();
    const role = page.getByLabel(`Role of ${email}`);
    await expect.poll(() => role.isVisible()).toBe(true);
    await role.selectOption("supervisor");
    await page.getByRole("button", { name: `Disable ${email}` }).click();
    await expect.poll(() => page.getByRole("button", { name: `Enable ${email}` }).isVisible()).toBe(true);
    const users = (await api.request("GET", "/api/v1/users?limit=100")).body as {
      items: Array<{ email: string; role: string; disabled: boolean }>;
    };
    expect(users.items.find((user) => user.email === email)).toMatchObject({ role: "supervisor", disabled: true });
    await expectAccessible(page, "the users page");

    // API keys: the secret is shown once, works, and stops working once revoked.
    await page.getByRole("navigation", { name: "Admin" }).getByRole("link", { name: "API keys" }).click();
    const keyName = `ci-key-${suffix}`;
    await page.getByLabel("Name", { exact: true }).fill(keyName);
    await page.getByLabel("Role").selectOption("viewer");
    await page.getByRole("button", { name: "Create key" }).click();
    const secret = (await page.getByTestId("new-api-key").textContent({ timeout: 15_000 })) ?? "";
    expect(secret.length).toBeGreaterThan(20);
    expect(await page.getByRole("button", { name: "Copy key" }).isVisible()).toBe(true);
    const asKey = () => fetch(`${world().url}/api/v1/sessions?limit=1`, { headers: { Authorization: `Bearer ${secret}` } });
    expect((await asKey()).status).toBe(200);
    await expectAccessible(page, "the API keys page");
    await page.getByRole("button", { name: "I have stored it" }).click();
    expect(await page.content()).not.toContain(secret);
    await page.reload();
    await expect.poll(() => page.getByRole("cell", { name: keyName, exact: true }).isVisible()).toBe(true);
    expect(await page.content()).not.toContain(secret);
    await page.getByRole("button", { name: `Revoke ${keyName}` }).click();
    await expect.poll(() => page.getByRole("button", { name: `Revoke ${keyName}` }).count()).toBe(0);
    expect((await asKey()).status).toBe(401);

    // Prompts: create, a second version becomes current, a rollback makes the first current again.
    await page.getByRole("navigation", { name: "Admin" }).getByRole("link", { name: "Prompts" }).click();
    const promptName = `Greeter ${suffix}`;
    await page.getByLabel("Name", { exact: true }).fill(promptName);
    await page.getByLabel("Instructions").fill("Greet the caller warmly. Version one.");
    await page.getByRole("button", { name: "Create prompt" }).click();
    await expect.poll(() => page.getByTestId("current-version").textContent()).toBe("1");
    const promptId = new URL(page.url()).pathname.split("/").at(-1) ?? "";
    await page.getByRole("button", { name: "New version" }).click();
    await page.getByLabel("Instructions").fill("Greet the caller by name. Version two.");
    await page.getByRole("button", { name: "Save as new version" }).click();
    await expect.poll(() => page.getByTestId("current-version").textContent()).toBe("2");
    await expectAccessible(page, "a prompt");
    await page.getByRole("button", { name: "Make version 1 current" }).click();
    await expect.poll(() => page.getByTestId("current-version").textContent()).toBe("1");
    const prompt = (await api.request("GET", `/api/v1/prompts/${promptId}`)).body as { currentVersion: number; versions: unknown[] };
    expect(prompt).toMatchObject({ currentVersion: 1 });
    expect(prompt.versions).toHaveLength(2);

    // Numbers: attach one that runs the prompt and is never recorded, then detach it.
    await page.getByRole("navigation", { name: "Admin" }).getByRole("link", { name: "Phone numbers" }).click();
    const e164 = `+1555${suffix}`;
    const attach = page.getByRole("region", { name: "Attach a number" });
    await attach.getByLabel("Number").fill(e164);
    await attach.getByLabel("Carrier").selectOption("telnyx");
    await attach.getByRole("button", { name: "Attach number" }).click();
    await expect.poll(() => page.getByLabel(`Prompt of ${e164}`).isVisible()).toBe(true);
    await page.getByLabel(`Prompt of ${e164}`).selectOption({ label: promptName });
    await expect.poll(async () => numberOf(e164)).toMatchObject({ promptId });
    await page.getByLabel(`Recording of ${e164}`).selectOption("off");
    await expect.poll(async () => numberOf(e164)).toMatchObject({ promptId, recording: "off" });
    await expectAccessible(page, "the phone numbers page");
    await page.getByRole("button", { name: `Detach ${e164}` }).click();
    await page.getByRole("button", { name: `Yes, detach ${e164}` }).click();
    await expect.poll(async () => numberOf(e164)).toBeUndefined();

    // The audit log has what was just done.
    await page.getByRole("navigation", { name: "Admin" }).getByRole("link", { name: "Audit log" }).click();
    await expect.poll(() => page.getByRole("cell", { name: "api_key.revoke" }).first().isVisible()).toBe(true);
    expect(await page.getByRole("cell", { name: "user.role_change" }).count()).toBeGreaterThan(0);
    await expectAccessible(page, "the audit log");
    await page.setViewportSize({ width: 360, height: 740 });
    await expectAccessible(page, "the audit log at 360 px");
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    await page.close();

    async function numberOf(number: string) {
      const listed = (await api.request("GET", "/api/v1/phone-numbers")).body as { items: Array<{ e164: string }> };
      return listed.items.find((item) => item.e164 === number);
    }
  });

  it("saves a tenant setting, and shows the API's refusal next to its field", async () => {
    const page = await tabs.newPage();
    await page.goto("/console/admin/settings");
    const retention = page.getByLabel(/Keep transcripts and recordings/);
    await expect.poll(() => retention.isVisible()).toBe(true);
    await retention.fill("400");
    await page.getByLabel("Consent message").fill("This call may be recorded.");
    await page.getByRole("button", { name: "Save settings" }).click();
    await expect
      .poll(async () => (await api.request("GET", "/api/v1/tenant/settings")).body)
      .toMatchObject({
        retentionDays: 400,
        consentMessage: "This call may be recorded.",
      });
    await page.reload();
    await expect.poll(() => retention.inputValue()).toBe("400");
    await screenshot(page, "admin-settings");

    // Zero sessions at once is no limit the platform takes: the refusal is said by the field, nothing is saved.
    const limit = page.getByLabel(/Most sessions at once/);
    await limit.fill("0");
    await page.getByRole("button", { name: "Save settings" }).click();
    await expect.poll(() => page.locator("#maxConcurrentSessions-error").textContent()).toMatch(/\S/);
    expect(await limit.getAttribute("aria-invalid")).toBe("true");
    expect(await page.getByTestId("settings-summary").textContent()).toContain("Not saved");
    expect((await api.request("GET", "/api/v1/tenant/settings")).body).toMatchObject({ maxConcurrentSessions: null });
    await expectAccessible(page, "the settings page with an error");

    await page.setViewportSize({ width: 360, height: 740 });
    await expectAccessible(page, "the settings page at 360 px");
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    // Put the shared tenant back as the other files expect it.
    await api.request("PATCH", "/api/v1/tenant/settings", { retentionDays: null, consentMessage: null });
    await page.close();
  });

  it("tells a non-admin the pages need an admin", async () => {
    const email = `viewer-${suffix}@console.test`;
    const password = "a-long-enough-password";
    expect((await api.request("POST", "/api/v1/users", { email, password, role: "viewer" })).status).toBe(201);
    const context = await newContext(browser);
    const page = await context.newPage();
    await signInThroughForm(page, email, password);
    await page.goto("/console/admin/keys");
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("This page needs an admin");
    expect(await page.getByRole("button", { name: "Create key" }).count()).toBe(0);
    await expectAccessible(page, "an admin page as a viewer");
    await context.close();
  });
});
