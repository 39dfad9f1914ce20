import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient } from "../node/support/local-platform.ts";
import { adminApi, chromiumPath, expectAccessible, launch, screenshot } from "./support/console.ts";
import { type SignedIn, signedIn } from "./support/signed-in.ts";

/**
 * The business pages against the real platform: a customer created through the form and found again by a misspelt
 * name, an invoice and a payment moving the balance and the ledger (each money POST with its Idempotency-Key), a
 * void, and a reminder scheduled and cancelled. The tenant keeps INR (two decimals), so ₹301.00 is 30100.
 */
describe.skipIf(!chromiumPath())("the console's business pages", () => {
  let browser: Browser;
  const suffix = String(Date.now()).slice(-8);
  const name = "Zorawar Tendulkarova";
  const phone = `+9198${suffix}`;
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

  const idempotencyKeyOf = (page: Page, path: string) =>
    page
      .waitForRequest((request) => request.method() === "POST" && new URL(request.url()).pathname === path)
      .then((request) => request.headers()["idempotency-key"]);

  it("creates a customer, finds it misspelt, invoices, takes a payment, voids, and schedules a reminder", async () => {
    const page = await tabs.newPage();
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Business" }).click();
    await expect.poll(() => page.getByRole("heading", { name: "New customer" }).isVisible()).toBe(true);

    const form = page.getByRole("region", { name: "New customer" });
    await form.getByLabel("Name", { exact: true }).fill(name);
    await form.getByLabel("Phone").fill(phone);
    await form.getByLabel("Nickname").fill("Zoru");
    await form.getByRole("button", { name: "Create customer" }).click();
    await expect.poll(() => page.getByRole("heading", { name, level: 1 }).isVisible()).toBe(true);
    const customerId = new URL(page.url()).pathname.split("/").at(-1) ?? "";

    // Found again by a misspelt name, as typed: the results are reached with ↓ and opened with Enter.
    await page.goto("/console/customers");
    const search = page.getByLabel("Search customers");
    await search.pressSequentially("Zorawar Tendulkarva", { delay: 20 });
    const results = page.getByRole("list", { name: "Search results" });
    await expect.poll(() => results.getByRole("link").first().textContent()).toContain(name);
    expect(await results.getByRole("link").first().textContent()).toMatch(/score \d+%, matched on [a-z]+/);
    await expectAccessible(page, "the customers page");
    await screenshot(page, "customers");
    await search.press("ArrowDown");
    expect(await page.evaluate(() => document.activeElement?.textContent ?? "")).toContain(name);
    await page.keyboard.press("Enter");
    await expect.poll(() => new URL(page.url()).pathname).toBe(`/console/customers/${customerId}`);

    // Edit: a note added, the nickname cleared (null), read back through the API.
    await page.getByRole("button", { name: "Edit customer" }).click();
    const details = page.getByRole("region", { name: "Details" });
    await details.getByLabel("Notes").fill("Prefers UPI");
    await details.getByLabel("Nickname").fill("");
    await details.getByRole("button", { name: "Save customer" }).click();
    await expect.poll(() => details.getByRole("button", { name: "Edit customer" }).isVisible()).toBe(true);
    expect((await api.request("GET", `/api/v1/customers/${customerId}`)).body).toMatchObject({
      notes: "Prefers UPI",
      nickname: null,
    });

    // An invoice with a free-text line: 2 × ₹150.50.
    const invoiceForm = page.getByRole("form", { name: "New invoice" });
    await invoiceForm.getByLabel("Product or description").fill("Delivery");
    await invoiceForm.getByLabel("Quantity").fill("2");
    await invoiceForm.getByLabel("Unit price (INR)").fill("150.50");
    const invoiceKey = idempotencyKeyOf(page, "/api/v1/invoices");
    await invoiceForm.getByRole("button", { name: "Create invoice" }).click();
    expect(await invoiceKey).toMatch(/^[0-9a-f-]{36}$/);
    await expect.poll(() => page.getByTestId("invoice-total").textContent()).toMatch(/301\.00/);
    expect(await page.getByTestId("invoice-status").textContent()).toBe("open");
    const invoiceId = new URL(page.url()).pathname.split("/").at(-1) ?? "";
    await expectAccessible(page, "an invoice");
    await screenshot(page, "invoice");

    // A payment of ₹100 against it: the balance and the ledger's running balance follow.
    await page.getByRole("link", { name }).click();
    const paymentForm = page.getByRole("form", { name: "Record a payment" });
    await paymentForm.getByLabel("Amount (INR)").fill("100");
    await paymentForm.getByLabel("Mode").selectOption("upi");
    const paymentKey = idempotencyKeyOf(page, "/api/v1/payments");
    await paymentForm.getByRole("button", { name: "Record payment" }).click();
    expect(await paymentKey).toMatch(/^[0-9a-f-]{36}$/);
    await expect.poll(() => page.getByTestId("customer-balance").textContent()).toMatch(/201\.00/);
    await expect
      .poll(() => page.getByTestId("balance-after").allTextContents())
      .toEqual([expect.stringMatching(/301\.00/), expect.stringMatching(/201\.00/)]);
    expect((await api.request("GET", `/api/v1/customers/${customerId}`)).body).toMatchObject({ balance: 20100 });

    // Voiding the invoice credits it back: the customer is ₹100 in credit.
    await page
      .getByRole("link", { name: /^[A-Z][a-z]{2} \d/ })
      .first()
      .click();
    await expect.poll(() => page.getByTestId("invoice-status").textContent()).toBe("open");
    await page.getByRole("button", { name: "Void invoice" }).click();
    await page.getByLabel("Reason (optional)").fill("written twice");
    await page.getByRole("button", { name: "Yes, void the invoice" }).click();
    await expect.poll(() => page.getByTestId("invoice-status").textContent()).toBe("void");
    expect((await api.request("GET", `/api/v1/invoices/${invoiceId}`)).body).toMatchObject({ status: "void", voidReason: "written twice" });
    expect((await api.request("GET", `/api/v1/customers/${customerId}`)).body).toMatchObject({ balance: -10000 });

    // A reminder for tomorrow, then cancelled.
    await page.goto(`/console/customers/${customerId}`);
    const reminderForm = page.getByRole("form", { name: "Schedule a reminder" });
    const tomorrow = new Date(Date.now() + 86_400_000);
    const local = new Date(tomorrow.getTime() - tomorrow.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await reminderForm.getByLabel("Due").fill(local);
    await reminderForm.getByLabel("Message").fill(`Reminder ${suffix}: your account`);
    await reminderForm.getByRole("button", { name: "Schedule reminder" }).click();
    const reminders = page.getByRole("region", { name: "Reminders" });
    await expect.poll(() => reminders.textContent()).toContain(`Reminder ${suffix}: your account`);
    await reminders.getByRole("button", { name: /^Cancel/ }).click();
    await expect.poll(() => reminders.getByRole("cell", { name: "cancelled" }).count()).toBe(1);
    const listed = (await api.request("GET", `/api/v1/reminders?customerId=${customerId}`)).body as { items: Array<{ state: string }> };
    expect(listed.items.map((item) => item.state)).toEqual(["cancelled"]);
    await expectAccessible(page, "a customer");
    await page.close();
  });

  it("pages through the customers with the cursor in the URL", async () => {
    // More than one page of 25, named to sort together.
    for (let index = 0; index < 26; index++) {
      const created = await api.request("POST", "/api/v1/customers", { name: `Paging ${suffix} ${String(index).padStart(2, "0")}` });
      expect(created.status).toBe(201);
    }
    const page = await tabs.newPage();
    await page.goto("/console/customers");
    const table = page.getByRole("table", { name: "Customers by name" });
    await expect.poll(() => table.locator("tbody tr").count()).toBe(25);
    const firstPage = await table.locator("tbody tr td:first-child").allTextContents();
    await page.getByRole("navigation", { name: "Customers pages" }).getByRole("button", { name: "Next page" }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get("cursor")).toMatch(/\S/);
    // The table empties while the next page loads: wait for a first row that is not the first page's.
    await expect
      .poll(async () => (await table.locator("tbody tr td:first-child").allTextContents())[0] ?? firstPage[0])
      .not.toBe(firstPage[0]);
    const secondPage = await table.locator("tbody tr td:first-child").allTextContents();
    expect(secondPage.filter((name) => firstPage.includes(name))).toEqual([]);
    // A reload stays on the second page; "First page" goes back.
    await page.reload();
    await expect.poll(async () => (await table.locator("tbody tr td:first-child").allTextContents())[0]).toBe(secondPage[0]);
    await page.getByRole("button", { name: "First page" }).click();
    await expect.poll(async () => (await table.locator("tbody tr td:first-child").allTextContents())[0]).toBe(firstPage[0]);
    await page.close();
  });

  it("shows the customers, invoices and reminders pages at 360 px wide", async () => {
    const page = await tabs.newPage();
    await page.setViewportSize({ width: 360, height: 740 });
    for (const [path, heading] of [
      ["/console/customers", "All customers"],
      ["/console/invoices", "Invoices"],
      ["/console/reminders", "Reminders"],
    ] as const) {
      await page.goto(path);
      await expect.poll(() => page.getByRole("heading", { name: heading }).first().isVisible()).toBe(true);
      await expect.poll(() => page.getByRole("status").filter({ hasText: "Loading" }).count()).toBe(0);
      await expectAccessible(page, `${path} at 360 px`);
      expect(await page.evaluate(() => document.documentElement.scrollWidth), path).toBeLessThanOrEqual(360);
    }
    await page.close();
  });
});
