import type { CallSignal } from "../../workers/carriers/carrier.ts";
import type { CallLedger } from "./call-ledger.ts";
import type { CarrierLink } from "./carrier-link.ts";
import { isTerminal } from "./state-machine.ts";

/**
 * How long after the answer the stream starts even if the carrier never reports the consent said: the longest
 * message (500 characters) takes about 35 s to say, and a lost `call.speak.ended` must not leave the caller in silence.
 */
export const CONSENT_STREAM_BY_MS = 45_000;
/** Object storage key of that deadline (epoch ms), set with the answer and cleared when the stream is asked for. */
export const CONSENT_DEADLINE_KEY = "consent_stream_by";
/** A stream the carrier refused to start is asked for again this long after. */
const STREAM_RETRY_MS = 5_000;

interface ConsentParts {
  ledger: CallLedger;
  storage: SyncKvStorage;
  wakeBy(at: number): Promise<void>;
  carrier: () => CarrierLink;
}

/**
 * A recorded call answered by command (Telnyx) whose caller hears the tenant's consent message before the agent: it
 * is answered without media and the message is said; the media stream — and with it the agent and the recording —
 * starts once the carrier reports it said, or at once if it could not be said, or at the deadline if the report never
 * comes. Its record's `consent` says where it is: `speaking` until the stream is asked for, then `streamed`.
 */
export class ConsentFirst {
  constructor(private readonly parts: ConsentParts) {}

  /** Answers without media and says `message`; throws only if the answer itself failed (the call cannot go on). */
  async answer(message: string): Promise<void> {
    await this.parts.carrier().consent({ step: "answer" });
    this.parts.ledger.record!.answerCommanded = true;
    this.parts.ledger.save();
    await this.say(async () => message);
  }

  /**
   * Says the message on a call already answered (an inbound one by `answer`, an outbound one dialled without its
   * stream by its callee), then the stream starts as above. The record moves before anything awaits, so a second
   * caller (a retried webhook, the alarm) does nothing; a message no longer known (the tenant stopped recording
   * before an evicted object learnt it again) starts the stream at once rather than leave the callee in silence.
   */
  async say(message: () => Promise<string | null>): Promise<void> {
    const { ledger, storage } = this.parts;
    const record = ledger.record!;
    // A retried webhook's answer (same command ids, so nothing repeats at the carrier) must not undo a later step.
    if (record.consent !== undefined) return;
    record.consent = "speaking";
    ledger.save();
    const deadline = Date.now() + CONSENT_STREAM_BY_MS;
    storage.put(CONSENT_DEADLINE_KEY, deadline);
    await this.parts.wakeBy(deadline);
    const text = await message();
    if (text === null) return this.startStream("no_message");
    try {
      await this.parts.carrier().consent({ step: "say", message: text });
    } catch (error) {
      this.parts.carrier().logFailure("consent_say", error);
      await this.startStream("say_failed");
    }
  }

  /** The carrier said the message (Telnyx `call.speak.ended`): the stream starts. */
  async onSignal(signal: CallSignal): Promise<void> {
    if (signal.kind === "spoken" && this.pending()) await this.startStream("spoken");
  }

  /** The alarm: past the deadline with the message not reported said, the stream starts anyway. */
  async onAlarm(): Promise<void> {
    const due = this.parts.storage.get<number>(CONSENT_DEADLINE_KEY);
    if (due === undefined) return;
    if (!this.pending()) {
      this.parts.storage.delete(CONSENT_DEADLINE_KEY);
      return;
    }
    if (Date.now() < due) await this.parts.wakeBy(due);
    else await this.startStream("deadline");
  }

  private pending(): boolean {
    const record = this.parts.ledger.record;
    return record?.consent === "speaking" && !isTerminal(record.status);
  }

  /** Asks once (the record moves before anything awaits, so a duplicate report or the alarm acts no second time). */
  private async startStream(why: "spoken" | "say_failed" | "no_message" | "deadline"): Promise<void> {
    const { ledger, storage } = this.parts;
    const record = ledger.record!;
    record.consent = "streamed";
    storage.delete(CONSENT_DEADLINE_KEY);
    ledger.note("system", "consent.stream_started", { from: record.status, to: null, outcome: "applied", detail: why });
    try {
      await this.parts.carrier().consent({ step: "stream" });
    } catch (error) {
      // The caller would hear nothing at all: asked again from the alarm while the call lasts.
      this.parts.carrier().logFailure("consent_stream", error);
      record.consent = "speaking";
      ledger.save();
      const retry = Date.now() + STREAM_RETRY_MS;
      storage.put(CONSENT_DEADLINE_KEY, retry);
      await this.parts.wakeBy(retry);
    }
  }
}
