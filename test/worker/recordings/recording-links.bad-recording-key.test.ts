import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { recordingLinkSignature } from "../../../workers/shared/recordings.ts";
import { tenantWithNumbers, twilioStatus } from "../support/calls.ts";
import { eventually, parseStreamTwiml, postTwilio, randomCallSid, twilioCallParams } from "../support/carriers.ts";
import { api, errorOf } from "../support/identity.ts";
import { openStream } from "../support/media-caller.ts";
import { uniqueKey } from "../support/provider-simulator.ts";

/**
 * RECORDING_SIGNING_KEY too short to be a key (this project's setting): recording links fail closed — neither issued
 * nor honoured, with 503 `configuration_error` — while the call is still recorded.
 */
describe("recording links without a usable key", () => {
  it("refuses to issue or honour links, and still records the call", async () => {
    const { token, numbers } = await tenantWithNumbers([{ carrier: "twilio", provider: "local" }]);
    expect((await api("/api/v1/tenant/settings", { method: "PATCH", token, body: { recording: "on" } })).status).toBe(200);
    const callSid = randomCallSid();
    const answer = await postTwilio("/telephony/twilio/voice", twilioCallParams(callSid, numbers[0]!, "ringing"), {
      headers: { "X-Correlation-ID": uniqueKey("bad-key") },
    });
    const stream = parseStreamTwiml(await answer.text());
    const sessionId = stream.url.split("/").at(-1)!;
    const caller = await openStream({ streamUrl: stream.url, callSid, mediaToken: stream.token });
    await caller.speak(new Uint8Array(8 * 600).fill(0xff));
    expect((await twilioStatus(callSid, numbers[0]!, "completed", { sequence: 5 })).status).toBe(204);

    // Recorded all the same: the row and the parts it names exist (600 ms of µ-law, two channels).
    const row = await eventually(
      async () =>
        env.DB.prepare("SELECT id, r2_key, bytes FROM recordings WHERE session_id = ?")
          .bind(sessionId)
          .first<{ id: string; r2_key: string; bytes: number }>(),
      250,
    );
    const parts = (await env.RECORDINGS.list({ prefix: `${row.r2_key}parts/` })).objects;
    expect(parts.length).toBeGreaterThan(0);
    expect(parts.reduce((sum, part) => sum + part.size, 0)).toBe(2 * 8 * 600);
    expect(row.bytes).toBe(58 + 2 * 8 * 600);

    const described = await api(`/api/v1/sessions/${sessionId}/recording`, { token });
    expect(described.status).toBe(503);
    expect((await errorOf(described)).code).toBe("configuration_error");
    // A link signed with the malformed key itself is not honoured either.
    const exp = Math.floor(Date.now() / 1000) + 600;
    const sig = await recordingLinkSignature("too-short-for-a-key", row.id, exp);
    const followed = await exports.default.fetch(`https://switchboard.test/recordings/${row.id}?exp=${exp}&sig=${sig}`);
    expect(followed.status).toBe(503);
  });
});
