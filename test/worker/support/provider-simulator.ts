import { env } from "cloudflare:workers";
import { encodeBase64 } from "../../../durable-objects/media/audio/pcm16.ts";
import type { ProviderEvent } from "../../../durable-objects/voice/providers/provider.ts";
import type { ConnectionSnapshot } from "../../simulators/providers/recorder.ts";
import type { ScenarioInput } from "../../simulators/providers/scenarios.ts";

/**
 * The simulated voice AI providers, seen from a Worker test: scenarios and recordings through the simulator's
 * control API (test/simulators/providers/control-api.ts), real caller speech from its audio endpoint, and a log
 * of the events an adapter reports that a test can wait on.
 */

const control = (path: string, init?: RequestInit) => fetch(`${env.PROVIDER_SIM_CONTROL_URL}/__sim/${path}`, init);

export const uniqueKey = (label: string) => `${label}-${crypto.randomUUID()}`;

export async function putScenario(key: string, scenario: ScenarioInput): Promise<void> {
  const response = await control(`scenarios/${encodeURIComponent(key)}`, { method: "PUT", body: JSON.stringify(scenario) });
  if (response.status !== 204) throw new Error(`scenario refused (${response.status}): ${await response.text()}`);
}

/** Every connection the simulator recorded for a correlation id, oldest first. */
export async function simulatorConnections(key: string): Promise<ConnectionSnapshot[]> {
  const response = await control(`sessions/${encodeURIComponent(key)}`);
  const { connections } = (await response.json()) as { connections: ConnectionSnapshot[] };
  return connections;
}

export async function onlyConnection(key: string): Promise<ConnectionSnapshot> {
  const connections = await simulatorConnections(key);
  if (connections.length !== 1) throw new Error(`expected one connection for ${key}, found ${connections.length}`);
  return connections[0]!;
}

/** The recordings in test/fixtures/audio (each followed by a second of silence, so a VAD ends the turn). */
export type Utterance = "hello" | "invoice" | "interrupt" | "payment" | "goodbye";

/** A recording as raw wire bytes: G.711 (8 kHz) or PCM16 little-endian at `rate`. */
export async function callerSpeech(name: Utterance, encoding: "pcmu" | "pcma" | "pcm16", rate: 8000 | 16000 | 24000): Promise<Uint8Array> {
  const response = await control(`audio/${name}?encoding=${encoding}&rate=${rate}`);
  if (response.status !== 200) throw new Error(`no caller audio ${name} (${response.status})`);
  return new Uint8Array(await response.arrayBuffer());
}

/** `bytes` cut into base64 frames of `frameBytes` (20 ms: 160 for G.711, 960 for 24 kHz PCM16). */
export function base64Frames(bytes: Uint8Array, frameBytes: number): string[] {
  const frames: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += frameBytes) {
    frames.push(encodeBase64(bytes.subarray(offset, offset + frameBytes)));
  }
  return frames;
}

type EventOf<T extends ProviderEvent["type"]> = Extract<ProviderEvent, { type: T }>;

interface Waiter {
  from: number;
  matches: (event: ProviderEvent) => boolean;
  resolve: (index: number) => void;
  reject: (error: Error) => void;
}

/**
 * Every event an adapter reported, in order. Waiting for an event fails at once when the session closes
 * without it, instead of hanging until the test times out.
 */
export class ProviderEventLog {
  readonly events: ProviderEvent[] = [];
  #waiters: Waiter[] = [];

  readonly onEvent = (event: ProviderEvent): void => {
    const index = this.events.push(event) - 1;
    for (const waiter of [...this.#waiters]) {
      if (index < waiter.from) continue;
      if (waiter.matches(event)) this.#settle(waiter, () => waiter.resolve(index));
      else if (event.type === "closed") {
        this.#settle(waiter, () => waiter.reject(new Error(`session closed (${event.code} ${event.reason}) while waiting`)));
      }
    }
  };

  /** The first event of `type` at or after `from` that satisfies `predicate`, and its index. */
  async next<T extends ProviderEvent["type"]>(
    type: T,
    from = 0,
    predicate: (event: EventOf<T>) => boolean = () => true,
  ): Promise<{ event: EventOf<T>; index: number }> {
    const matches = (event: ProviderEvent): boolean => event.type === type && predicate(event as EventOf<T>);
    const found = this.events.findIndex((event, index) => index >= from && matches(event));
    const index =
      found >= 0 ? found : await new Promise<number>((resolve, reject) => this.#waiters.push({ from, matches, resolve, reject }));
    return { event: this.events[index] as EventOf<T>, index };
  }

  ofType<T extends ProviderEvent["type"]>(type: T, from = 0, to = Infinity): Array<EventOf<T>> {
    return this.events.slice(from, to).filter((event): event is EventOf<T> => event.type === type);
  }

  #settle(waiter: Waiter, settle: () => void): void {
    this.#waiters = this.#waiters.filter((candidate) => candidate !== waiter);
    settle();
  }
}

/** Decoded byte length of base64 audio. */
export function base64Bytes(base64: string): number {
  return atob(base64).length;
}
