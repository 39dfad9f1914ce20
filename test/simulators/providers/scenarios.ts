import { z } from "zod";

/**
 * What a test asks of the simulated providers for the connections that carry one correlation id (the
 * `X-Correlation-ID` of the upgrade request; "default" when absent): scripted conversation content and faults.
 * A scenario applies to every connection with that key, whichever provider it reaches, unless a scenario is set
 * under `<key>#<provider>`: that one applies to that provider's connections instead.
 */

const delayedClose = z.strictObject({
  afterMs: z.number().int().min(0),
  code: z.number().int().min(1000).max(4999),
  reason: z.string().max(123).default(""),
});

const delayedErrorEvent = z.strictObject({
  afterMs: z.number().int().min(0),
  code: z.string().min(1).max(100),
  message: z.string().min(1).max(1000),
});

const toolCall = z.strictObject({
  /** 1-based caller turn (utterance heard in the audio) that the model answers with this call. */
  onTurn: z.number().int().min(1),
  name: z.string().min(1).max(64),
  arguments: z.record(z.string(), z.unknown()),
});

const scenarioSchema = z.strictObject({
  /** Refuse upgrades with this HTTP status (every upgrade, or only the next `connectionsToRefuse`). */
  refuseUpgrade: z.union([z.literal(401), z.literal(429), z.literal(500), z.literal(503)]).optional(),
  /** Refuse only the next N upgrades (with `refuseUpgrade`, default 503), then accept: reconnect tests. */
  connectionsToRefuse: z.number().int().min(0).optional(),
  /** Answer the upgrade this much later (past the platform's connect timeout: a provider that does not answer). */
  upgradeDelayMs: z.number().int().min(0).max(60_000).optional(),
  /** Destroy the TCP connection (no close frame) this long after the upgrade. */
  dropAfterMs: z.number().int().min(0).optional(),
  /** Destroy the TCP connection right after the simulator has SENT this many messages. */
  dropAfterMessages: z.number().int().min(0).optional(),
  /** Send a close frame with this code and reason. */
  closeAfterMs: delayedClose.optional(),
  /** Gemini only: send `goAway` this long after the upgrade, then close (1011) when the announced time is up. */
  goAwayAfterMs: z.number().int().min(0).optional(),
  /** After SENDING this many messages, send nothing more (the connection stays open and keeps reading). */
  stallAfterMessages: z.number().int().min(0).optional(),
  /** OpenAI `error` event / Deepgram `Error` message; Gemini has no in-band error, so it closes 1011 instead. */
  errorEventAfterMs: delayedErrorEvent.optional(),
  /** The agent's successive utterances; past the end: `agent reply N`. */
  replies: z.array(z.string().min(1).max(2000)).max(1000).optional(),
  /** What the caller "said" in successive turns; past the end: `caller turn N`. */
  callerTranscripts: z.array(z.string().max(2000)).max(1000).optional(),
  toolCalls: z.array(toolCall).max(100).optional(),
  /** Gemini and Deepgram: answer the session's setup (`setupComplete`, `SettingsApplied`) this much later: a slow provider. */
  setupDelayMs: z.number().int().min(0).max(60_000).optional(),
  /**
   * OpenAI only: the end of a caller's turn (`speech_stopped`, the commit, the response) comes this much later than
   * the audio showed it, as when the caller's audio queued on its way to the provider.
   */
  hearsTurnEndLateMs: z.number().int().min(0).max(60_000).optional(),
  /** Model "thinking" time from end of caller speech to the first response output (default: simulator option). */
  responseDelayMs: z.number().int().min(0).max(60_000).optional(),
});

export type Scenario = z.infer<typeof scenarioSchema>;
export type ScenarioInput = z.input<typeof scenarioSchema>;
export type ToolCallScript = z.infer<typeof toolCall>;

export class ScenarioError extends Error {
  override readonly name = "ScenarioError";
}

export function parseScenario(input: unknown): Scenario {
  const result = scenarioSchema.safeParse(input);
  if (!result.success) throw new ScenarioError(z.prettifyError(result.error));
  return result.data;
}

export const DEFAULT_KEY = "default";
const MAX_KEYS = 1000;

type UpgradeDecision = { accept: true; scenario: Scenario } | { accept: false; status: number };

/** Scenarios by key, and how many upgrades each key has seen (refusals are counted per key). */
export class ScenarioRegistry {
  readonly #scenarios = new Map<string, { scenario: Scenario; refusedSoFar: number }>();

  set(key: string, scenario: Scenario): void {
    this.#scenarios.delete(key);
    // Bounded: a long benchmark run that never deletes its scenarios must not grow without limit.
    if (this.#scenarios.size >= MAX_KEYS) {
      const oldest = this.#scenarios.keys().next().value;
      if (oldest !== undefined) this.#scenarios.delete(oldest);
    }
    this.#scenarios.set(key, { scenario, refusedSoFar: 0 });
  }

  get(key: string): Scenario | undefined {
    return this.#scenarios.get(key)?.scenario;
  }

  delete(key: string): void {
    this.#scenarios.delete(key);
  }

  clear(): void {
    this.#scenarios.clear();
  }

  /** Decides one upgrade for `key`, counting it against `connectionsToRefuse`. */
  decideUpgrade(key: string): UpgradeDecision {
    const entry = this.#scenarios.get(key);
    if (!entry) return { accept: true, scenario: {} };
    const { scenario } = entry;
    if (scenario.connectionsToRefuse !== undefined) {
      if (entry.refusedSoFar >= scenario.connectionsToRefuse) return { accept: true, scenario };
      entry.refusedSoFar++;
      return { accept: false, status: scenario.refuseUpgrade ?? 503 };
    }
    if (scenario.refuseUpgrade !== undefined) return { accept: false, status: scenario.refuseUpgrade };
    return { accept: true, scenario };
  }
}
