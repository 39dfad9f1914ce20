import { describe, expect, it } from "vitest";
import { headOf } from "../../simulators/providers/recorder.ts";
import { decodeSamples, differenceShare, silence } from "../support/audio-signals.ts";
import { eventually } from "../support/carriers.ts";
import { callerSpeech, putScenario, simulatorConnections, uniqueKey } from "../support/provider-simulator.ts";
import { g711Format, type TelnyxEncoding, TelnyxMediaCaller, telnyxCallWith } from "../support/telnyx-media-caller.ts";

/**
 * A Telnyx call's codecs, both ways, through the real Worker, the call's object, the fake Telnyx API and the OpenAI
 * simulator: the stream's `start` says what the caller's audio arrives in, and what goes back is exactly the codec the
 * answer asked for in `stream_bidirectional_codec` (the number's codec), whatever the stream carries in. A-law sent
 * where µ-law was asked for is static to the caller.
 */

const REPLY = "Hello! How can I help you today?";

const other = (codec: "PCMU" | "PCMA") => (codec === "PCMU" ? "PCMA" : "PCMU");

describe.each([
  ["PCMU", "PCMU"],
  ["PCMU", "audio/x-mulaw"],
  ["PCMU", "PCMA"],
  ["PCMA", "PCMA"],
  ["PCMA", "PCMU"],
] as const)("a number asking Telnyx for %s, whose stream starts in %s", (asked, inbound: TelnyxEncoding) => {
  it("hears the caller decoded per `start` and sends the agent back in the codec asked for", async () => {
    const key = uniqueKey("telnyx-codec");
    await putScenario(key, { replies: [REPLY], callerTranscripts: ["Hi there."] });
    const call = await telnyxCallWith("openai", asked, key);
    expect(call.answer).toMatchObject({ stream_codec: asked, stream_bidirectional_codec: asked, stream_bidirectional_mode: "rtp" });
    await eventually(async () => (await simulatorConnections(key)).length === 1);

    const caller = await TelnyxMediaCaller.open(call.answer.stream_url, call.callControlId, inbound);
    const inboundFormat = g711Format(inbound);
    await caller.speak(await callerSpeech("hello", inboundFormat.encoding === "pcma" ? "pcma" : "pcmu", 8000));
    await caller.speak(silence(inboundFormat, 600));
    await caller.until(() => caller.receivedBytes().length >= 8_000); // a second of the agent's reply

    // Taken before the provider's record: the record then holds every chunk received (and maybe later ones).
    const receivedHeads = caller.payloads.map((payload) => headOf(Uint8Array.from(atob(payload), (c) => c.charCodeAt(0)))).join(",");
    const [connection] = await simulatorConnections(key);
    // The provider was configured for the codec asked of Telnyx, and heard the caller's turn (decoded per `start`).
    const wire = { type: asked === "PCMU" ? "audio/pcmu" : "audio/pcma" };
    expect(connection!.setup).toMatchObject({ session: { audio: { input: { format: wire }, output: { format: wire } } } });
    expect(connection!.turns.entries.map((turn) => turn.transcript)).toEqual(["Hi there."]);

    // Decoded in the codec asked for, what the caller got is the agent's voice; in the other law it would be static…
    expect(differenceShare(decodeSamples(caller.payloads, g711Format(asked)))).toBeLessThan(0.1);
    expect(differenceShare(decodeSamples(caller.payloads, g711Format(other(asked))))).toBeGreaterThan(0.15);
    // …and it is the provider's audio byte for byte (nothing transcoded back into the inbound codec).
    const sent = connection!.audioOut.chunkTimes.entries.map((chunk) => chunk.head).join(",");
    expect(sent).toContain(receivedHeads);
  });
});
