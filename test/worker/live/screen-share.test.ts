import { afterEach, describe, expect, it } from "vitest";
import { eventually } from "../support/carriers.ts";
import { api, createTenant, userWithToken } from "../support/identity.ts";
import { closeLiveBrowsers, joinLive, type LiveBrowser } from "../support/live-browser.ts";
import { captureLogs } from "../support/logs.ts";
import { type StorageWrite, watchStorage } from "../support/storage-writes.ts";
import { connectionsOf, switchTo } from "../support/switching.ts";

/**
 * Screen sharing in a web session, through the real Worker, the session's object and the provider simulators: the
 * caller's `screen` frames reach OpenAI (an `input_image` item) and Gemini (a video frame) byte for byte, at most one
 * a second; a flood, an oversized frame, a supervisor's frame and a malformed image are refused; a provider without
 * vision (Deepgram after a switch, the offline engine) gets nothing and the caller is told once.
 */

let watched: { writes: StorageWrite[]; restore: () => void } | null = null;
afterEach(() => {
  watched?.restore();
  watched = null;
  closeLiveBrowsers();
});

/** Shows the agent a screen frame, as the console's share button does. */
function share(browser: LiveBrowser, { mimeType, data }: { mimeType: string; data: string }): void {
  browser.send({ type: "screen", mimeType, data });
}

interface Image {
  mimeType: "image/jpeg" | "image/png";
  data: string;
  sha256: string;
  bytes: number;
}

const SIGNATURE = { "image/jpeg": [0xff, 0xd8, 0xff, 0xe0], "image/png": [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] };

/** An image of `size` bytes that starts as its type must (the rest is filler), with its digest. */
async function image(mimeType: Image["mimeType"], fill: number, size = 2_000): Promise<Image> {
  const bytes = new Uint8Array(size).fill(fill);
  bytes.set(SIGNATURE[mimeType]);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const sha256 = [...digest].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return { mimeType, data: btoa(binary), sha256, bytes: size };
}

async function createSession(token: string, provider: string, key: string): Promise<string> {
  const response = await api("/api/v1/sessions", { method: "POST", token, body: { provider }, headers: { "X-Correlation-ID": key } });
  expect(response.status).toBe(201);
  return ((await response.json()) as { id: string }).id;
}

type Live = { providerState: string; provider: string; counters: Record<string, number> };

async function liveOf(sessionId: string, token: string): Promise<Live> {
  const response = await api(`/api/v1/sessions/${sessionId}`, { token });
  return ((await response.json()) as { live: Live }).live;
}

/** A web session whose provider is connected, its caller joined and greeted. */
async function sharingSession(provider: "openai" | "gemini" | "local") {
  const tenantId = await createTenant();
  const { accessToken: token } = await userWithToken(tenantId, "agent");
  const key = `screen-${crypto.randomUUID()}`;
  const id = await createSession(token, provider, key);
  await eventually(async () => (await liveOf(id, token)).providerState === "connected");
  const caller = await joinLive(id, token, "caller");
  const hello = await caller.next("hello");
  return { tenantId, token, key, id, caller, hello };
}

const imagesOf = async (key: string, provider: string) => (await connectionsOf(key, provider)).flatMap((c) => c.images.entries);

describe("screen sharing in a web session", () => {
  it("reaches OpenAI as an input_image, byte for byte; a second frame within the second is dropped", async () => {
    const { token, key, id, caller, hello } = await sharingSession("openai");
    expect(hello).toMatchObject({ provider: "openai", capabilities: { vision: true } });
    const [first, second] = [await image("image/jpeg", 1), await image("image/jpeg", 2)];
    share(caller, first);
    share(caller, second);
    await caller.settled();
    expect((await liveOf(id, token)).counters).toMatchObject({ screenFrames: 1, screenFramesDropped: 0 });
    const received = await eventually(async () => {
      const images = await imagesOf(key, "openai");
      return images.length > 0 && images;
    });
    expect(received).toEqual([expect.objectContaining({ mimeType: "image/jpeg", bytes: first.bytes, sha256: first.sha256 })]);
    // The image is context, not a turn: the agent was not asked to answer it.
    const [connection] = await connectionsOf(key, "openai");
    expect(connection!.clientMessageCounts["response.create"] ?? 0).toBe(0);
    expect(caller.ofType("error")).toEqual([]);
  });

  it("leaves no trace: no storage write from a frame's path, no log line carrying it", async () => {
    const logs = captureLogs();
    const { key, id, caller } = await sharingSession("openai");
    watched = await watchStorage(id);
    const shown = await image("image/jpeg", 12, 4_000);
    share(caller, shown);
    await eventually(async () => (await imagesOf(key, "openai")).length === 1);
    await caller.settled();
    const fromFramePath = watched.writes.filter((write) => /\b(screenFrame|onScreenFrame|sendImage|ScreenShare)\b/.test(write.stack));
    expect(fromFramePath.map((write) => `${write.what}\n${write.stack}`)).toEqual([]);
    // The image's bytes appear in no log line (a slice of its base64 stands for all of it).
    expect(logs.of(id).length).toBeGreaterThan(0);
    expect(JSON.stringify(logs.all())).not.toContain(shown.data.slice(100, 160));
  });

  it("reaches Gemini as a video frame; a PNG near the size bound is taken too", async () => {
    const { key, caller, hello } = await sharingSession("gemini");
    expect(hello.capabilities).toEqual({ vision: true });
    // 190 KiB of image is about 253 KiB of base64: within the 256 KiB a screen frame may take.
    const png = await image("image/png", 7, 190 * 1024);
    share(caller, png);
    const received = await eventually(async () => {
      const images = await imagesOf(key, "gemini");
      return images.length > 0 && images;
    });
    expect(received).toEqual([expect.objectContaining({ mimeType: "image/png", bytes: png.bytes, sha256: png.sha256 })]);
  });

  it("refuses a supervisor's frame, a malformed image and a non-image; closes a flood (1008) and an oversized frame (1009)", async () => {
    const tenant = await sharingSession("openai");
    const { accessToken: supervisorToken } = await userWithToken(tenant.tenantId, "supervisor");
    const supervisor = await joinLive(tenant.id, supervisorToken, "supervisor");
    await supervisor.next("hello");
    share(supervisor, await image("image/jpeg", 3, 600));
    expect(await supervisor.next("error")).toMatchObject({ code: "forbidden" });

    // Each of these is the first frame of a fresh second (a new caller socket replaces the last one each time).
    const caller = tenant.caller;
    share(caller, { mimeType: "image/jpeg", data: "not base64!" });
    expect(await caller.next("error")).toMatchObject({ code: "invalid_message" });
    const second = await joinLive(tenant.id, tenant.token, "caller");
    share(second, { ...(await image("image/jpeg", 4)), mimeType: "image/png" });
    expect(await second.next("error")).toMatchObject({ code: "invalid_message", message: "The screen frame's data is not image/png" });
    const third = await joinLive(tenant.id, tenant.token, "caller");
    share(third, { mimeType: "image/gif", data: (await image("image/jpeg", 5)).data });
    expect(await third.next("error")).toMatchObject({ code: "invalid_message" });

    const flooding = await joinLive(tenant.id, tenant.token, "caller");
    const frame = await image("image/jpeg", 6);
    for (let i = 0; i < 3; i++) share(flooding, frame);
    expect(await flooding.closed).toBe(1008);

    const oversized = await joinLive(tenant.id, tenant.token, "caller");
    share(oversized, { mimeType: "image/jpeg", data: "A".repeat(256 * 1024) });
    expect(await oversized.closed).toBe(1009);
    // Only a screen frame may be that big: any other text frame from the caller over 4 KiB closes its socket too.
    const chatty = await joinLive(tenant.id, tenant.token, "caller");
    chatty.send({ type: "ping", t: 1, pad: "x".repeat(5_000) });
    expect(await chatty.closed).toBe(1009);

    // The one frame that reached the provider is the flood's first: nothing malformed ever did.
    const images = await eventually(async () => {
      const received = await imagesOf(tenant.key, "openai");
      return received.length > 0 && received;
    });
    expect(images.map((entry) => entry.sha256)).toEqual([frame.sha256]);
    expect((await liveOf(tenant.id, tenant.token)).counters).toMatchObject({ screenFrames: 1 });
  });

  it("stops forwarding after a switch to a provider without vision, tells every browser, and the caller once", async () => {
    const { tenantId, token, key, id, caller } = await sharingSession("openai");
    const supervisor = await joinLive(id, (await userWithToken(tenantId, "supervisor")).accessToken, "supervisor");
    expect((await supervisor.next("hello")).capabilities).toEqual({ vision: true });
    const response = await switchTo(token, id, { provider: "deepgram", immediate: true });
    expect(response.status).toBe(200);
    expect(await caller.next("capabilities")).toMatchObject({ provider: "deepgram", capabilities: { vision: false } });
    expect(await supervisor.next("capabilities")).toMatchObject({ provider: "deepgram", capabilities: { vision: false } });

    share(caller, await image("image/jpeg", 8));
    expect(await caller.next("error")).toMatchObject({ code: "vision_unsupported" });
    // A later frame (a fresh second) is dropped as well, without a second notice.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    share(caller, await image("image/jpeg", 9));
    await caller.settled();
    expect(caller.ofType("error")).toHaveLength(1);
    expect(supervisor.ofType("error")).toEqual([]); // the notice is the caller's alone
    expect((await liveOf(id, token)).counters).toMatchObject({ screenFrames: 0, screenFramesDropped: 2 });
    expect(await imagesOf(key, "deepgram")).toEqual([]);
    expect(await imagesOf(key, "openai")).toEqual([]);

    // Back on a provider with vision, the caller is told, and the next frame goes through.
    expect((await switchTo(token, id, { provider: "gemini", immediate: true })).status).toBe(200);
    expect(await caller.next("capabilities", 2)).toMatchObject({ provider: "gemini", capabilities: { vision: true } });
    const shown = await image("image/jpeg", 10);
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // a fresh second again
    share(caller, shown);
    const received = await eventually(async () => {
      const images = await imagesOf(key, "gemini");
      return images.length > 0 && images;
    });
    expect(received.map((entry) => entry.sha256)).toEqual([shown.sha256]);
  });

  it("the offline engine has no vision: the greeting says so and a frame is dropped with one notice", async () => {
    const { token, id, caller, hello } = await sharingSession("local");
    expect(hello).toMatchObject({ provider: "local", capabilities: { vision: false } });
    share(caller, await image("image/jpeg", 11));
    expect(await caller.next("error")).toMatchObject({ code: "vision_unsupported" });
    expect((await liveOf(id, token)).counters).toMatchObject({ screenFrames: 0, screenFramesDropped: 1 });
  });
});
