import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page, WebSocketRoute } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type ApiClient, eventually } from "../node/support/local-platform.ts";
import { readWav } from "../simulators/carriers/audio.ts";
import { type CallReport, type CarrierApis, simulateCall, startCarrierApis } from "../simulators/carriers/index.ts";
import { TEST_PUBLIC_BASE_URL, TEST_TWILIO_ACCOUNT_SID, TEST_TWILIO_AUTH_TOKEN } from "../support/test-settings.ts";
import { adminApi, chromiumPath, expectAccessible, launch, newContext, screenshot, submitSignIn, world } from "./support/console.ts";
import { CONSOLE_NUMBERS } from "./support/global-setup.ts";

/**
 * The console's live operations against a real phone call: the carrier simulator dials the tenant's Twilio number
 * from this process and speaks recorded lines (test/fixtures/audio), the platform answers with the offline engine,
 * and a supervisor in Chromium watches it on the dashboard and the live view, takes it over with Chromium's fake
 * microphone (fed a recorded line too) and releases it, switches its provider, whispers, survives a dropped `/live`
 * socket, and hangs up.
 */
const AUDIO = join(import.meta.dirname, "../fixtures/audio");
const speech = (name: string) => readWav(readFileSync(join(AUDIO, `${name}.wav`)));
const TWILIO_NUMBER = Object.keys(CONSOLE_NUMBERS).find((e164) => CONSOLE_NUMBERS[e164 as keyof typeof CONSOLE_NUMBERS] === "twilio")!;
// This file's own caller, so its call is told apart from any other file's on the shared platform.
const CALLER = `+1555018${String(Date.now() % 10_000).padStart(4, "0")}`;
const WHISPER = `Offer a callback tomorrow morning ${Date.now()}`;

/** Waits for what a person would wait for; the machine may be busy, so generously (nothing asserted on time). */
const poll = <T>(probe: () => T | Promise<T>, timeout = 20_000) => expect.poll(probe, { timeout, interval: 250 });

/** Signs in through the form and waits for the signed-in shell (its Log out button shows at every width). */
async function signInAt(page: Page): Promise<void> {
  await page.goto("/");
  await submitSignIn(page);
}

interface SessionDetail {
  id: string;
  status: string;
  correlationId: string;
  call: { id: string; from: string; status: string } | null;
  transcript: Array<{ role: string; text: string }>;
  live: { provider: string } | null;
}

// A real call under a loaded machine: each step waits generously for what it waits for, and asserts nothing on time.
describe.skipIf(!chromiumPath())("live operations in the web console", { timeout: 150_000 }, () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let admin: ApiClient;
  // The fake Twilio API of this process: not the one the platform talks to, only a handle to hang the caller up.
  let handle: CarrierApis;
  let running: Promise<CallReport>;
  let callSid: string | null = null;
  let sessionId = "";
  /** Text frames the main page received on its `/live` sockets (watched, not intercepted), and audio frames counted. */
  const liveFrames: string[] = [];
  let audioFrames = 0;

  const detail = async () => (await admin.request("GET", `/api/v1/sessions/${sessionId}`)).body as SessionDetail;
  const transcriptLines = () => page.getByTestId("transcript-line");

  beforeAll(async () => {
    admin = await adminApi();
    handle = await startCarrierApis();
    // The supervisor's microphone says a recorded line, over and over.
    browser = await launch([`--use-file-for-fake-audio-capture=${join(AUDIO, "caller-payment.wav")}`]);
    context = await newContext(browser);
    page = await context.newPage();
    page.on("websocket", (socket) => {
      if (!socket.url().includes("/live")) return;
      socket.on("framereceived", ({ payload }) => {
        if (typeof payload === "string") liveFrames.push(payload);
        else audioFrames++;
      });
    });

    // The caller says a line every few seconds for the whole file: the transcript keeps moving.
    const lines = ["caller-hello", "caller-invoice", "caller-payment", "caller-goodbye"].map(speech);
    running = simulateCall({
      carrier: "twilio",
      baseUrl: world().url,
      publicBaseUrl: TEST_PUBLIC_BASE_URL,
      from: CALLER,
      to: TWILIO_NUMBER,
      utterances: Array.from({ length: 40 }, (_, index) => lines[index % lines.length]!),
      pauseMs: 2_500,
      lingerMs: 300_000,
      maxDurationMs: 300_000,
      twilio: { accountSid: TEST_TWILIO_ACCOUNT_SID, authToken: TEST_TWILIO_AUTH_TOKEN, api: handle.twilio },
    });
    const call = await eventually(
      "this file's call to be live",
      async () => {
        const list = await admin.request("GET", "/api/v1/calls?carrier=twilio&direction=inbound&limit=100");
        const found = (
          list.body as { items: Array<{ sessionId: string; from: string; status: string; carrierCallId: string }> }
        ).items.find((item) => item.from === CALLER && item.status === "in_progress");
        return found;
      },
      30_000,
      250,
    );
    sessionId = call.sessionId;
    callSid = call.carrierCallId;
  }, 90_000);

  afterAll(async () => {
    // Whatever happened, the caller hangs up (a no-op if the call already ended) and the file's resources go.
    const call = callSid === null ? undefined : handle?.twilio.call(callSid);
    if (call && "hangUp" in call) call.hangUp("completed");
    await running?.catch(() => undefined);
    await handle?.stop();
    await browser?.close();
  }, 60_000);

  it("shows the live call on the dashboard, updating, and opens its live view", async () => {
    await signInAt(page);
    const row = page.getByTestId("active-session").filter({ hasText: CALLER });
    await poll(() => row.count(), 20_000).toBe(1);
    expect(await row.textContent()).toMatch(/in progress \(twilio\)/);
    await poll(() => page.getByTestId("updated").textContent()).toMatch(/Updated (just now|\d+ s ago)/);
    expect(await page.getByTestId("figure").filter({ hasText: "Active sessions" }).textContent()).toMatch(/[1-9]/);
    expect(await page.getByTestId("provider-health").count()).toBeGreaterThan(0);
    await expectAccessible(page, "the dashboard");
    await screenshot(page, "dashboard");

    await row.getByRole("link").click();
    await poll(() => page.url()).toContain(`/console/sessions/${sessionId}`);
    await poll(() => page.getByRole("heading", { name: "Live session" }).isVisible()).toBe(true);
    await poll(() => page.getByTestId("live-status").textContent(), 15_000).toMatch(/Connected, (excellent|good|fair|poor)/);
  });

  it("streams the transcript in as the call goes on", async () => {
    await poll(() => transcriptLines().count(), 30_000).toBeGreaterThanOrEqual(2);
    const before = await transcriptLines().count();
    await poll(() => transcriptLines().count(), 30_000).toBeGreaterThan(before);
    expect(await transcriptLines().filter({ hasText: "Caller" }).count()).toBeGreaterThan(0);
    expect(await transcriptLines().filter({ hasText: "Agent" }).count()).toBeGreaterThan(0);
    // The lines came over /live, not only from the record.
    expect(liveFrames.some((frame) => frame.includes('"type":"transcript"'))).toBe(true);
    await expectAccessible(page, "the live session view");
    await screenshot(page, "session-live");
  });

  it("takes the call over with the microphone, hears the caller, and releases it to the agent", async () => {
    const { correlationId } = await detail();
    // The takeover's speech-to-text stream is refused (the OpenAI simulator's transcription session, scripted by the
    // call's correlation id): the takeover goes on without it, and at the release the platform writes how much of the
    // supervisor's audio it received and could not transcribe, which is what proves the microphone reached it.
    // (Accepted, with a fake microphone that never stops talking, the stream stalled the whole simulated platform for
    // tens of seconds in this test; its own tests, test/worker/live/supervisor.test.ts, cover transcription.)
    const control = inject("simulators").PROVIDER_SIM_CONTROL_URL;
    const scripted = await fetch(`${control}/__sim/scenarios/${encodeURIComponent(`${correlationId}:supervisor-stt`)}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refuseUpgrade: 503 }),
    });
    expect(scripted.status).toBe(204);
    // A supervisor that only watches is sent no audio.
    expect(audioFrames).toBe(0);

    await page.getByRole("button", { name: "Take over" }).click();
    const state = page.getByTestId("takeover-state");
    await poll(() => state.textContent(), 30_000).toContain("You have the call.");
    await poll(() => page.getByTestId("event-feed").textContent()).toContain("You took the call over");
    // The caller's audio reaches this supervisor, and is played.
    await poll(async () => audioFrames, 30_000).toBeGreaterThan(0);
    await poll(() => page.getByTestId("caller-audio").textContent(), 30_000).toMatch(/Hearing the caller: [1-9]\d* s/);
    await expectAccessible(page, "the live session view during a takeover");

    await page.getByRole("button", { name: "Release to the agent" }).click();
    await poll(() => state.textContent(), 30_000).toContain("The agent has the call.");
    await poll(() => page.getByTestId("event-feed").textContent()).toContain("The call went back to the agent.");
    // The supervisor's audio reached the platform: its seconds are in a `supervisor` line, live and in the record.
    const UNTRANSCRIBED = /\[[1-9]\d* s of the supervisor's audio, not transcribed\]/;
    await poll(() => transcriptLines().filter({ hasText: UNTRANSCRIBED }).first().textContent(), 30_000).toMatch(/^\s*Supervisor/);
    const lines = await eventually("the supervisor's line in the record", async () => {
      const transcript = (await detail()).transcript;
      return transcript.some((line) => line.role === "supervisor") ? transcript : undefined;
    });
    expect(lines.filter((line) => line.role === "supervisor").map((line) => line.text)).toEqual([expect.stringMatching(UNTRANSCRIBED)]);
  });

  it("switches the provider: the view and the API agree", async () => {
    expect(await page.getByTestId("current-provider").textContent()).toBe("local");
    await page.getByLabel("Switch to").selectOption("openai");
    await page.getByRole("button", { name: "Switch provider" }).click();
    await poll(() => page.getByTestId("notices").textContent(), 20_000).toContain("Switched to openai");
    await poll(() => page.getByTestId("current-provider").textContent()).toBe("openai");
    await poll(() => page.getByTestId("event-feed").textContent()).toContain("Switched from local to openai (manual)");
    await poll(() => page.getByTestId("switch-entry").filter({ hasText: "local → openai" }).textContent(), 20_000).toMatch(/succeeded/);

    const history = (await admin.request("GET", `/api/v1/sessions/${sessionId}/switch-history`)).body as {
      items: Array<{ fromProvider: string; toProvider: string; reason: string; outcome: string }>;
    };
    expect(history.items).toContainEqual(
      expect.objectContaining({ fromProvider: "local", toProvider: "openai", reason: "manual", outcome: "succeeded" }),
    );
    expect((await detail()).live?.provider).toBe("openai");
  });

  it("whispers to the agent: supervisors see it, the caller is never told", async () => {
    await page.getByLabel(/Whisper to the agent/).fill(WHISPER);
    await page.getByRole("button", { name: "Whisper", exact: true }).click();
    await poll(() => page.getByTestId("event-feed").textContent()).toContain(WHISPER);
    // The record keeps it as a note about the call, never as something the agent said to the caller.
    const recorded = await eventually("the whisper in the record", async () => {
      const lines = (await detail()).transcript;
      return lines.some((line) => line.text.includes(WHISPER)) ? lines : undefined;
    });
    expect(recorded.filter((line) => line.text.includes(WHISPER)).map((line) => line.role)).toEqual(["system"]);
    // By now the record has the agent's turns: the latency waterfall shows them, stage by stage.
    await poll(() => page.getByTestId("waterfall-turn").count(), 30_000).toBeGreaterThan(0);
    expect(await page.getByTestId("waterfall-turn").first().textContent()).toMatch(/provider \d+ ms|provider —/);
  });

  it("reconnects after the /live socket drops, with the offline banner meanwhile, and keeps streaming", async () => {
    // A second supervisor whose `/live` sockets pass through the test, so the test can cut one as a network would.
    const sockets: Array<{ page: WebSocketRoute; server: WebSocketRoute; frames: string[] }> = [];
    const flaky = await newContext(browser);
    await flaky.routeWebSocket(/\/live(\?|$)/, (ws) => {
      const server = ws.connectToServer();
      const entry = { page: ws, server, frames: [] as string[] };
      sockets.push(entry);
      server.onMessage((message) => {
        if (typeof message === "string") entry.frames.push(message);
        ws.send(message);
      });
    });
    const watcher = await flaky.newPage();
    await signInAt(watcher);
    await watcher.goto(`/console/sessions/${sessionId}`);
    await poll(() => watcher.getByTestId("live-status").textContent(), 30_000).toMatch(/Connected/);
    expect(sockets).toHaveLength(1);

    await flaky.setOffline(true);
    await poll(() => watcher.getByTestId("offline-banner").isVisible()).toBe(true);
    // The network is gone and the server side of the socket closes, as a dropped connection does.
    await sockets[0]!.server.close({ code: 1011, reason: "network lost" });
    await sockets[0]!.page.close({ code: 1011, reason: "network lost" });
    await poll(() => watcher.getByTestId("live-status").textContent(), 15_000).toMatch(/Reconnecting/);
    expect(await watcher.getByRole("status").filter({ hasText: "The live connection dropped" }).isVisible()).toBe(true);
    // Offline, the view waits for the network instead of retrying into nothing.
    expect(sockets).toHaveLength(1);

    await flaky.setOffline(false);
    await poll(() => watcher.getByTestId("offline-banner").isVisible()).toBe(false);
    await poll(() => watcher.getByTestId("live-status").textContent(), 30_000).toMatch(/Connected/);
    expect(sockets).toHaveLength(2);
    const shown = await watcher.getByTestId("transcript-line").count();
    await poll(() => sockets[1]!.frames.some((frame) => frame.includes('"type":"transcript"')), 45_000).toBe(true);
    await poll(() => watcher.getByTestId("transcript-line").count(), 15_000).toBeGreaterThan(shown);
    await flaky.close();
  });

  it("fits a 360 px wide screen: the dashboard and the live view", async () => {
    const narrow = await newContext(browser, { width: 360, height: 740 });
    const small = await narrow.newPage();
    await signInAt(small);
    // Below 720 px the menu folds behind its button.
    expect(await small.getByRole("button", { name: "Menu" }).isVisible()).toBe(true);
    await poll(() => small.getByTestId("active-session").filter({ hasText: CALLER }).count(), 20_000).toBe(1);
    const overflow = () => small.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(await overflow()).toBeLessThanOrEqual(0);
    await expectAccessible(small, "the dashboard at 360 px");
    await small.goto(`/console/sessions/${sessionId}`);
    await poll(() => small.getByTestId("live-status").textContent(), 15_000).toMatch(/Connected/);
    await poll(() => small.getByTestId("transcript-line").count(), 20_000).toBeGreaterThan(0);
    expect(await overflow()).toBeLessThanOrEqual(0);
    await expectAccessible(small, "the live session view at 360 px");
    await narrow.close();
  });

  it("hangs up: the view says the session ended and links to its record", async () => {
    await page.getByRole("button", { name: "Hang up" }).click();
    await poll(() => page.getByTestId("notices").textContent(), 15_000).toContain("Hung up");
    const ended = page.getByTestId("session-ended");
    await poll(() => ended.isVisible(), 20_000).toBe(true);
    expect(await ended.textContent()).toMatch(/This session has ended/);
    expect(await ended.getByRole("link", { name: "Open its record" }).getAttribute("href")).toBe(`/console/sessions/${sessionId}/record`);
    await poll(async () => (await detail()).call?.status, 15_000).toBe("completed");
  });
});
