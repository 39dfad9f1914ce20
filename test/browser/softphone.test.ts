import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page, WebSocketRoute } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient } from "../node/support/local-platform.ts";
import {
  adminApi,
  chromiumPath,
  expectAccessible,
  launch,
  newContext,
  reportOpenPages,
  screenshot,
  signInThroughForm,
} from "./support/console.ts";
import { putScenario, simulatorConnections } from "./support/provider-simulator.ts";

/**
 * The softphone in a real Chromium whose microphone is a recorded caller (callerRecording), calling the agent
 * through the real platform: the OpenAI simulator answers. What a person sees (the agent's words, their own, the
 * level meter, the connection) and what the platform holds (the session, its end) are asserted.
 */

const FIXTURES = join(import.meta.dirname, "../fixtures/audio");
const SESSION_KEY = "switchboard.softphone.session";
/** Long enough that the looping caller talks over it: the platform's barge-in clears the browser's queued audio. */
const LONG_REPLY =
  "Thanks for calling. Let me look up the balance on your account. I can see a few recent invoices and one payment " +
  "received last week, so I will read each of them to you in order, starting with the oldest one, and then the total.";

/**
 * The fake microphone's recording: the caller says hello, pauses (the provider's turn detection needs half a second of
 * quiet), then talks over the agent's reply; Chromium plays it in a loop. The fixtures are 8 kHz mono PCM16 WAVs.
 */
function callerRecording(): string {
  const pcm = (name: string) => {
    const wav = readFileSync(join(FIXTURES, name));
    const data = wav.indexOf("data");
    return wav.subarray(data + 8, data + 8 + wav.readUInt32LE(data + 4));
  };
  const silence = Buffer.alloc(8000 * 2 * 1.5);
  const body = Buffer.concat([pcm("caller-hello.wav"), silence, pcm("caller-interrupt.wav"), silence]);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + body.length, 4);
  header.write("WAVEfmt ", 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(8000, 24);
  header.writeUInt32LE(16000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36);
  header.writeUInt32LE(body.length, 40);
  const file = join(tmpdir(), `softphone-caller-${crypto.randomUUID()}.wav`);
  writeFileSync(file, Buffer.concat([header, body]));
  return file;
}

/** Sessions created from `page` carry `key` as their correlation id, so the provider simulator plays its scenario. */
async function tagSessions(page: Page, key: string): Promise<void> {
  await page.route("**/api/v1/sessions", (route) =>
    route.request().method() === "POST"
      ? route.continue({ headers: { ...route.request().headers(), "x-correlation-id": key } })
      : route.continue(),
  );
}

/** A poll with room for a busy machine (the platform, the simulators and Chromium share two cores with other work). */
const eventually = <T>(probe: () => Promise<T> | T) => expect.poll(probe, { timeout: 15_000 });
const numberIn = async (page: Page, testId: string) =>
  Number(/(\d+)/.exec((await page.getByTestId(testId).textContent()) ?? "")?.[1] ?? "0");
const meterValue = (page: Page) => page.getByLabel(/Microphone level/).evaluate((meter) => (meter as HTMLMeterElement).value);
const callInStorage = (page: Page) => page.evaluate((key) => sessionStorage.getItem(key), SESSION_KEY);

/** The session's status as the API tells it; a platform too busy to answer this once is asked again by the poll. */
async function sessionStatus(admin: ApiClient, id: string): Promise<string> {
  try {
    const answer = await admin.request("GET", `/api/v1/sessions/${id}`);
    return (answer.body as { status: string }).status;
  } catch (error) {
    return `unreachable: ${String(error)}`;
  }
}

describe.skipIf(!chromiumPath())("the softphone", () => {
  let browser: Browser;
  let recording: string;
  let admin: ApiClient;
  const contexts: BrowserContext[] = [];
  const open = async () => {
    const context = await newContext(browser);
    contexts.push(context);
    return context;
  };
  beforeAll(async () => {
    recording = callerRecording();
    // One sign-in for the file: polling the session's status must not run into the login rate limit.
    admin = await adminApi();
    browser = await launch([`--use-file-for-fake-audio-capture=${recording}`]);
  });
  // A failed test's call is hung up with its page, so it does not load the platform for the next.
  afterEach(async ({ task }) => {
    if (task.result?.state === "fail") await reportOpenPages();
    for (const context of contexts.splice(0)) await context.close();
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(recording, { force: true });
  });

  it("calls the agent: heard both ways, muted, interrupted, rejoined after a reload, hung up", { timeout: 120_000 }, async () => {
    const key = `softphone-${crypto.randomUUID()}`;
    await putScenario(key, {
      replies: [LONG_REPLY, "Of course. Let me find a person for you."],
      callerTranscripts: ["Hi there, I would like to check my balance.", "Wait, can I talk to a real person instead?"],
    });
    const context = await open();
    const page = await context.newPage();
    await tagSessions(page, key);
    await signInThroughForm(page);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Softphone" }).click();
    await eventually(() => page.getByRole("heading", { name: "Place a call" }).isVisible()).toBe(true);
    await expectAccessible(page, "the softphone, idle");

    // Another tab of the console hears that a call started and ended (its session lists refresh on it).
    const otherTab = await context.newPage();
    await otherTab.goto("/");
    await otherTab.evaluate(() => {
      const seen: unknown[] = [];
      (window as unknown as { seen: unknown[] }).seen = seen;
      new BroadcastChannel("switchboard").addEventListener("message", (event) => seen.push(event.data));
    });
    const tabMessages = () => otherTab.evaluate(() => (window as unknown as { seen: Array<{ type: string; sessionId?: string }> }).seen);

    await page.getByLabel("Provider").selectOption("openai");
    await page.getByRole("button", { name: "Call the agent" }).click();
    await expect.poll(() => page.getByRole("heading", { name: "Call in progress" }).isVisible(), { timeout: 15_000 }).toBe(true);
    const sessionId = await callInStorage(page);
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    await eventually(() => sessionStatus(admin, sessionId!)).toBe("active");
    await eventually(tabMessages).toContainEqual({ type: "session.changed", sessionId });

    // The microphone's path: the meter moves, the provider hears the caller, and the caller's words come back.
    await expect.poll(() => meterValue(page), { timeout: 15_000 }).toBeGreaterThan(0);
    const transcript = page.getByRole("log", { name: "Transcript" });
    await expect.poll(() => transcript.textContent(), { timeout: 30_000 }).toContain("You: Hi there, I would like to check my balance.");
    // The agent was heard: its audio frames played, its words shown.
    await expect.poll(() => numberIn(page, "agent-audio"), { timeout: 30_000 }).toBeGreaterThan(10);
    await expect.poll(() => transcript.textContent(), { timeout: 30_000 }).toContain("Agent: Thanks for calling.");
    expect(await page.getByTestId("connection").textContent()).toMatch(/^Connected/);
    await screenshot(page, "softphone");
    await expectAccessible(page, "the softphone in a call");

    // The caller talks over the long reply: the platform says playback_clear and the browser
    // drops the agent audio it had queued, at once.
    await expect.poll(() => numberIn(page, "interruptions"), { timeout: 30_000 }).toBeGreaterThan(0);
    const dropped = Number(/dropped ([\d.]+) s/.exec((await page.getByTestId("interruptions").textContent()) ?? "")?.[1]);
    expect(dropped).toBeGreaterThan(0);

    // Muted: silence goes out instead, and the meter says so.
    await page.getByRole("button", { name: "Mute" }).click();
    await eventually(() => page.getByRole("button", { name: "Unmute" }).getAttribute("aria-pressed")).toBe("true");
    await eventually(() => page.getByText("Microphone level (muted)").isVisible()).toBe(true);
    await eventually(() => meterValue(page)).toBe(0);
    await page.getByRole("button", { name: "Unmute" }).click();
    await expect.poll(() => meterValue(page), { timeout: 15_000 }).toBeGreaterThan(0);

    // A reload mid-call joins the same session again within the platform's grace period.
    await page.reload();
    await expect.poll(() => page.getByTestId("rejoined").isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await callInStorage(page)).toBe(sessionId);
    // The conversation so far is shown again (from the session's record), and the call goes on.
    await eventually(() => transcript.textContent()).toContain("You: Hi there, I would like to check my balance.");
    await expect.poll(() => numberIn(page, "agent-audio"), { timeout: 30_000 }).toBeGreaterThan(0);
    await eventually(() => sessionStatus(admin, sessionId!)).toBe("active");
    const connections = await simulatorConnections(key);
    expect(connections).toHaveLength(1); // the same session and provider connection, not a new call
    expect(connections[0]!.audioIn.frames).toBeGreaterThan(50);

    await page.getByRole("button", { name: "Hang up" }).click();
    await eventually(() => page.getByTestId("last-outcome").textContent()).toBe("You hung up.");
    await expect.poll(() => sessionStatus(admin, sessionId!), { timeout: 15_000 }).toBe("ended");
    expect(await callInStorage(page)).toBeNull();
    // Two messages for this session: the start and the end.
    await eventually(async () => (await tabMessages()).filter((message) => message.sessionId === sessionId).length).toBe(2);
  });

  it("a recorded session's caller is shown the consent message on joining, and the platform told once it was said", async () => {
    const consentMessage = `This call is recorded (${crypto.randomUUID().slice(0, 8)}).`;
    const on = await admin.request("PATCH", "/api/v1/tenant/settings", { recording: "on", consentMessage });
    expect(on.status).toBe(200);
    try {
      const page = await (await open()).newPage();
      const sent: string[] = [];
      page.on("websocket", (socket) => socket.on("framesent", ({ payload }) => typeof payload === "string" && sent.push(payload)));
      await signInThroughForm(page);
      await page.goto("/console/softphone");
      await page.getByLabel("Provider").selectOption("local");
      await page.getByRole("button", { name: "Call the agent" }).click();
      await eventually(() => page.getByTestId("consent").textContent()).toContain(consentMessage);
      // Said by the browser's speech (or failed to be: the message was shown), the platform hears the caller.
      await eventually(async () => sent.some((payload) => JSON.parse(payload).type === "consent_heard")).toBe(true);
      await expectAccessible(page, "the softphone, a recorded call");
      await page.getByRole("button", { name: "Hang up" }).click();
      await eventually(() => page.getByTestId("last-outcome").textContent()).toBe("You hung up.");
    } finally {
      // The tenant is shared by every browser test: the others run unrecorded, as before.
      expect((await admin.request("PATCH", "/api/v1/tenant/settings", { recording: "off" })).status).toBe(200);
    }
  });

  it("shares the screen with a provider that sees: downscaled JPEG frames reach the model; sharing stops on request and when the provider cannot see", async () => {
    const key = `softphone-share-${crypto.randomUUID()}`;
    const context = await open();
    const page = await context.newPage();
    await tagSessions(page, key);
    await signInThroughForm(page);
    await page.goto("/console/softphone");
    await page.getByLabel("Provider").selectOption("openai");
    await page.getByRole("button", { name: "Call the agent" }).click();
    const share = page.getByRole("button", { name: "Share screen" });
    await eventually(() => share.isEnabled()).toBe(true);
    await share.click();
    await eventually(() => numberIn(page, "frames-shared")).toBeGreaterThan(1);
    // The preview is the last frame sent: a JPEG no wider than 1280 px, and the model got exactly those bytes.
    const preview = page.getByRole("img", { name: "Your screen as the agent last saw it" });
    const frame = await preview.evaluate((image) => {
      const img = image as HTMLImageElement;
      return { width: img.naturalWidth, src: img.src };
    });
    expect(frame.width).toBeGreaterThan(0);
    expect(frame.width).toBeLessThanOrEqual(1280);
    expect(frame.src).toMatch(/^data:image\/jpeg;base64,/);
    const sha256 = createHash("sha256")
      .update(Buffer.from(frame.src.slice(frame.src.indexOf(",") + 1), "base64"))
      .digest("hex");
    await eventually(async () =>
      (await simulatorConnections(key)).flatMap((connection) => connection.images.entries.map((image) => image.sha256)),
    ).toContain(sha256);
    const [connection] = await simulatorConnections(key);
    expect(connection!.images.entries.every((image) => image.mimeType === "image/jpeg")).toBe(true);
    await expectAccessible(page, "the softphone sharing a screen");

    await page.getByRole("button", { name: "Stop sharing" }).click();
    await eventually(() => share.isEnabled()).toBe(true);

    // Sharing again, then the session moves to a provider that cannot see: sharing stops and the button says why.
    await share.click();
    await eventually(() => page.getByRole("button", { name: "Stop sharing" }).isVisible()).toBe(true);
    const sessionId = await callInStorage(page);
    const switched = await admin.request("POST", `/api/v1/sessions/${sessionId}/switch-provider`, {
      provider: "deepgram",
      immediate: true,
    });
    expect(switched.status).toBe(200);
    await eventually(() => page.getByTestId("share-reason").textContent()).toBe("The current provider (Deepgram) cannot see images");
    expect(await share.isDisabled()).toBe(true);
    await page.getByRole("button", { name: "Hang up" }).click();
    await eventually(() => page.getByTestId("last-outcome").textContent()).toBe("You hung up.");
  });

  it("at 360 px, on a provider that cannot see: sharing is disabled and says why; offline, it reconnects", async () => {
    const context = await open();
    const page = await context.newPage();
    await signInThroughForm(page);
    // Narrowed after signing in: below 720 px the main menu folds behind its button, which the sign-in helper does not open.
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto("/console/softphone");
    await eventually(() => page.getByRole("heading", { name: "Place a call" }).isVisible()).toBe(true);
    await expectAccessible(page, "the softphone at 360 px");
    // The call's socket passes through the test, so the test can cut it the way a lost network would.
    const liveSockets: WebSocketRoute[] = [];
    await page.routeWebSocket(/\/live\?role=caller$/, (socket) => {
      socket.connectToServer();
      liveSockets.push(socket);
    });
    await page.getByLabel("Provider").selectOption("deepgram");
    await page.getByRole("button", { name: "Call the agent" }).click();
    await expect
      .poll(() => page.getByTestId("share-reason").textContent(), { timeout: 15_000 })
      .toBe("The current provider (Deepgram) cannot see images");
    expect(await page.getByRole("button", { name: "Share screen" }).isDisabled()).toBe(true);
    // Nothing wider than the screen: no sideways scrolling at 360 px.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    await expectAccessible(page, "the softphone in a call at 360 px");
    const sessionId = await callInStorage(page);

    // The network goes and takes the call's socket with it: the shell says so, the socket waits for the network and
    // says "Reconnecting…"; back, it joins the same call again.
    await eventually(() => page.getByTestId("connection").textContent()).toMatch(/^Connected/);
    await context.setOffline(true);
    await eventually(() => page.getByTestId("offline-banner").isVisible()).toBe(true);
    await liveSockets[0]!.close({ code: 1012, reason: "network lost" });
    await eventually(() => page.getByTestId("connection").textContent()).toBe("Reconnecting…");
    await context.setOffline(false);
    await eventually(() => page.getByTestId("connection").textContent()).toMatch(/^Connected/);
    expect(liveSockets).toHaveLength(2);
    expect(await callInStorage(page)).toBe(sessionId);
    expect(await sessionStatus(admin, sessionId!)).toBe("active");
    await page.getByRole("button", { name: "Hang up" }).click();
    await expect.poll(() => sessionStatus(admin, sessionId!), { timeout: 15_000 }).toBe("ended");
  });
});
