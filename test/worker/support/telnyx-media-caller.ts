import { afterEach, expect } from "vitest";
import type { AudioFormat } from "../../../durable-objects/media/audio/audio-format.ts";
import { encodeBase64 } from "../../../durable-objects/media/audio/pcm16.ts";
import { tenantWithNumbers } from "./calls.ts";
import { eventually, openTelnyxMedia, postTelnyx, randomCallControlId, simRequests, telnyxEnvelope } from "./carriers.ts";

/**
 * Telnyx's side of a call for end-to-end tests: the signed `call.initiated`, the `answer` command the call's object
 * sent the fake Telnyx API, and the bidirectional media stream in rtp mode, whose `start` names the encoding the
 * stream carries in (which need not be the codec the answer asked for). It keeps every payload the platform sends
 * back and echoes marks at once.
 */
export type TelnyxEncoding = "PCMU" | "PCMA" | "audio/x-mulaw";

export interface TelnyxAnswer {
  stream_url: string;
  stream_codec: string;
  stream_bidirectional_codec: string;
}

const FRAME_BYTES = 160; // 20 ms of G.711

/** A tenant's Telnyx number in `codec` answered by `provider`, and an inbound call to it whose correlation id is `key`. */
export async function telnyxCallWith(provider: "openai" | "local", codec: "PCMU" | "PCMA", key: string) {
  const { token, numbers } = await tenantWithNumbers([{ carrier: "telnyx", codec, provider }]);
  const callControlId = randomCallControlId();
  const initiated = telnyxEnvelope("call.initiated", {
    call_control_id: callControlId,
    direction: "incoming",
    from: "+14155550100",
    to: numbers[0],
    state: "parked",
  });
  expect((await postTelnyx(initiated, { headers: { "X-Correlation-ID": key } })).status).toBe(200);
  const answer = await eventually(
    async () => (await simRequests({ carrier: "telnyx", callId: callControlId, path: "/actions/answer" }))[0],
  );
  return { token, callControlId, answer: answer.body as TelnyxAnswer };
}

export class TelnyxMediaCaller {
  /** Base64 payloads of the platform's `media` messages, in order. */
  readonly payloads: string[] = [];
  private sequence = 1;
  private chunk = 0;
  private readonly waiters: Array<{ test: () => boolean; resolve: () => void }> = [];

  private constructor(
    private readonly socket: WebSocket,
    private readonly streamId: string,
    private readonly callControlId: string,
  ) {
    socket.addEventListener("message", (event) => this.onMessage(String(event.data)));
  }

  /** `encoding` is what `start` names: any string, as a broken or hostile stream might name one; null sends no `start`. */
  static async open(streamUrl: string, callControlId: string, encoding: TelnyxEncoding | (string & {}) | null): Promise<TelnyxMediaCaller> {
    const upgrade = await openTelnyxMedia(streamUrl);
    expect(upgrade.status).toBe(101);
    const socket = upgrade.webSocket!;
    socket.accept();
    const caller = new TelnyxMediaCaller(socket, crypto.randomUUID(), callControlId);
    openCallers.push(caller);
    socket.send(JSON.stringify({ event: "connected", version: "1.0.0" }));
    if (encoding !== null) caller.start(encoding);
    return caller;
  }

  /** A `start` on this stream (again, when the test makes the stream change its encoding). */
  start(encoding: string): void {
    this.send({
      event: "start",
      sequence_number: String(++this.sequence),
      stream_id: this.streamId,
      start: { call_control_id: this.callControlId, client_state: "", media_format: { encoding, sample_rate: 8000, channels: 1 } },
    });
  }

  dtmf(digit: string): void {
    this.send({ event: "dtmf", sequence_number: String(++this.sequence), stream_id: this.streamId, dtmf: { digit } });
  }

  /** Streams G.711 bytes (in the encoding `start` named) as 20 ms frames, five frames every 20 ms. */
  async speak(bytes: Uint8Array): Promise<void> {
    for (let offset = 0, frames = 0; offset < bytes.length; offset += FRAME_BYTES) {
      this.chunk++;
      this.send({
        event: "media",
        sequence_number: String(++this.sequence),
        stream_id: this.streamId,
        media: {
          track: "inbound",
          chunk: String(this.chunk),
          timestamp: String(this.chunk * 20),
          payload: encodeBase64(bytes.subarray(offset, offset + FRAME_BYTES)),
        },
      });
      if (++frames % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Bytes the platform has sent back so far. */
  receivedBytes(): Uint8Array {
    return Uint8Array.from(this.payloads.flatMap((payload) => Array.from(atob(payload), (char) => char.charCodeAt(0))));
  }

  /** Resolves once `test` holds (checked on every message); the test's timeout bounds the wait. */
  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  close(): void {
    try {
      this.socket.close(1000, "test done");
    } catch {
      // already closed
    }
  }

  private send(message: unknown): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  private onMessage(text: string): void {
    const message = JSON.parse(text) as { event: string; media?: { payload: string }; mark?: { name: string } };
    if (message.event === "media" && message.media) this.payloads.push(message.media.payload);
    else if (message.event === "mark" && message.mark) {
      this.send({ event: "mark", sequence_number: String(++this.sequence), stream_id: this.streamId, mark: { name: message.mark.name } });
    }
    for (const waiter of [...this.waiters]) {
      if (!waiter.test()) continue;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }
}

const openCallers: TelnyxMediaCaller[] = [];
afterEach(() => {
  for (const caller of openCallers.splice(0)) caller.close();
});

/** The wire format Telnyx names `codec`. */
export const g711Format = (codec: string): AudioFormat => ({ encoding: codec === "PCMA" ? "pcma" : "pcmu", sampleRate: 8000 });
