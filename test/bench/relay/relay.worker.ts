/**
 * The floor the load benchmark measures the platform against: a bare Durable Object relay between a Twilio media
 * stream and OpenAI Realtime, on the same wrangler/workerd stack, with no storage, no auth and no state machine.
 * It answers the voice webhook with a stream URL, accepts the media socket, opens the provider socket, and forwards
 * caller frames as `input_audio_buffer.append`, agent deltas as `media` + `mark`, and `speech_started` as `clear`.
 */
import { DurableObject } from "cloudflare:workers";

interface RelayEnv {
  RELAY: DurableObjectNamespace<Relay>;
  OPENAI_REALTIME_URL: string;
  OPENAI_API_KEY: string;
}

export default {
  async fetch(request: Request, env: RelayEnv): Promise<Response> {
    const url = new URL(request.url);
    const media = /^\/telephony\/twilio\/media\/([^/]+)$/.exec(url.pathname);
    if (media) return env.RELAY.get(env.RELAY.idFromName(media[1]!)).fetch(request);
    if (url.pathname === "/telephony/twilio/voice") {
      const key = request.headers.get("X-Correlation-ID") ?? crypto.randomUUID();
      const stream = `wss://${url.host}/telephony/twilio/media/${encodeURIComponent(key)}`;
      const twiml = `<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="${stream}"><Parameter name="token" value="relay"/></Stream></Connect></Response>`;
      return new Response(twiml, { headers: { "Content-Type": "text/xml" } });
    }
    return new Response(null, { status: url.pathname === "/telephony/twilio/status" ? 204 : 404 });
  },
};

export class Relay extends DurableObject<RelayEnv> {
  override async fetch(request: Request): Promise<Response> {
    const key = decodeURIComponent(new URL(request.url).pathname.split("/").pop()!);
    const upgrade = await fetch(`${this.env.OPENAI_REALTIME_URL.replace(/^ws/, "http")}?model=gpt-realtime`, {
      headers: { Upgrade: "websocket", Authorization: `Bearer ${this.env.OPENAI_API_KEY}`, "X-Correlation-ID": key },
    });
    const provider = upgrade.webSocket;
    if (!provider) return new Response("provider refused", { status: 502 });
    provider.accept();
    const pcmu = { type: "audio/pcmu" };
    const turnDetection = { type: "server_vad", silence_duration_ms: 500, create_response: true, interrupt_response: true };
    const session = {
      type: "realtime",
      output_modalities: ["audio"],
      audio: { input: { format: pcmu, turn_detection: turnDetection }, output: { format: pcmu } },
    };
    provider.send(JSON.stringify({ type: "session.update", session }));

    const [client, carrier] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    carrier.accept();
    let streamSid = "";
    carrier.addEventListener("message", (event) => {
      const message = JSON.parse(event.data as string) as { event: string; streamSid?: string; media?: { payload: string } };
      if (message.event === "media") provider.send(`{"type":"input_audio_buffer.append","audio":"${message.media!.payload}"}`);
      else if (message.event === "start") streamSid = message.streamSid!;
    });
    provider.addEventListener("message", (event) => {
      const message = JSON.parse(event.data as string) as { type: string; delta?: string; item_id?: string };
      if (message.type === "response.output_audio.delta") {
        carrier.send(`{"event":"media","streamSid":"${streamSid}","media":{"payload":"${message.delta}"}}`);
        carrier.send(`{"event":"mark","streamSid":"${streamSid}","mark":{"name":"${message.item_id}"}}`);
      } else if (message.type === "input_audio_buffer.speech_started") {
        carrier.send(`{"event":"clear","streamSid":"${streamSid}"}`);
      }
    });
    carrier.addEventListener("close", () => provider.close(1000));
    provider.addEventListener("close", () => carrier.close(1000));
    return new Response(null, { status: 101, webSocket: client });
  }
}
