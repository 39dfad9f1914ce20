import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

/** The web console's pages through the real Worker and its static-assets binding (console/dist, built by `npm test`). */
const get = (path: string) => exports.default.fetch(`https://switchboard.test${path}`);

describe("the web console's pages", () => {
  it("serves the app at / and /console/ with the console's own security policy", async () => {
    for (const path of ["/", "/console", "/console/"]) {
      const response = await get(path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("Content-Type"), path).toMatch(/^text\/html/);
      const html = await response.text();
      expect(html).toContain('<div id="app"></div>');
      expect(html).toMatch(/<script type="module" crossorigin src="\/console\/assets\/index-[\w-]+\.js">/);
      const policy = response.headers.get("Content-Security-Policy") ?? "";
      expect(policy).toContain("script-src 'self'");
      expect(policy).toContain("connect-src 'self'");
      expect(policy).toContain("frame-ancestors 'none'");
      expect(response.headers.get("Permissions-Policy")).toContain("microphone=(self)");
      // The index names the current build's hashed files: it must not outlive a deploy in a cache.
      expect(response.headers.get("Cache-Control")).toContain("max-age=0");
    }
  });

  it("answers a deep link with the app, so a reload on any page lands in it", async () => {
    const response = await get("/console/sessions/ses_123?status=active");
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('<div id="app"></div>');
  });

  it("serves the build's files and 404s a file that does not exist", async () => {
    const index = await (await get("/console/")).text();
    const script = /src="(\/console\/assets\/index-[\w-]+\.js)"/.exec(index)?.[1];
    expect(script).toBeDefined();
    const asset = await get(script as string);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("Content-Type")).toMatch(/javascript/);
    expect((await get("/console/assets/missing-0000.js")).status).toBe(404);
  });

  it("leaves the API's answers alone: unknown API paths stay JSON 404s with the API's policy", async () => {
    const response = await get("/api/v1/no-such-thing");
    expect(response.status).toBe(404);
    expect(response.headers.get("Content-Type")).toMatch(/^application\/json/);
    expect(response.headers.get("Content-Security-Policy")).toContain("default-src 'none'");
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });
});
